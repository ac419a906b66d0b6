"""The configuration tables (each change on the log first: services.stores.config_log) and the
read-model schema the projector builds; services.stores.migrations brings a database to its shape."""
from __future__ import annotations

import sqlite3

from services.stores import config_log, config_store, migrations


def init(conn: sqlite3.Connection, admin_token: str | None = None) -> None:
    """The database at the schema this code knows (every table, the read models' too: the migrations'
    steps still to apply), as each process that opens it needs; the bootstrap admin token of the default
    workspace when one is given. migrations.SchemaTooNew: the database is newer than this code."""
    migrations.migrate(conn)
    config_log.init(conn)  # after the tables it logs: its triggers read their columns
    if admin_token:
        config_store.bootstrap_admin(conn, admin_token)
