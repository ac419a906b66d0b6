"""The configuration tables (each change on the log first: services.stores.config_log) and the
read-model schema the projector builds."""
from __future__ import annotations

import sqlite3

from services.stores import byoc_store, catalog_store, config_log, config_store, detector_store, request_store


def init(conn: sqlite3.Connection, admin_token: str | None = None) -> None:
    """Every configuration table, as each process that opens the database needs them; the bootstrap
    admin token of the default workspace when one is given."""
    for store in (config_store, request_store, catalog_store, byoc_store, detector_store):
        store.init(conn)
    config_log.init(conn)  # after the tables it logs: its triggers read their columns
    if admin_token:
        config_store.bootstrap_admin(conn, admin_token)
