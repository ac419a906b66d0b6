"""Seed 000's datastores: a directory of files or a SQLite database, read as Arrow tables.

A thin face over the connectors package, the one registry and set of readers that
seed 004's connectors use too (the confinement rules are there). Every file with a data
extension in a directory is an asset (named by its path relative to the directory); every
table of a SQLite database is one.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from services.adapters.connectors.base import ConnectorError, ResourceError
from services.adapters.connectors.confinement import check_allowed, resolve_path, system_paths, workspace_root
from services.adapters.connectors.local import LocalDirConnector
from services.adapters.connectors.sqlite import SqliteConnector
from services.adapters.readers import TABLE_EXTENSIONS

DATA_EXTENSIONS = tuple(TABLE_EXTENSIONS)  # every file a table can be read from

# The names seed 000's code knows them by: a datastore that cannot be used, an asset that cannot be read.
DatastoreError = ConnectorError
AssetReadError = ResourceError

__all__ = ["DATA_EXTENSIONS", "AssetReadError", "DatastoreError", "check_allowed", "list_containers", "read_asset",
           "resolve_path", "system_paths", "workspace_root"]


def _connector(type_: str, path: str | Path) -> LocalDirConnector | SqliteConnector:
    return LocalDirConnector(path) if type_ == "local_dir" else SqliteConnector(path)


def list_containers(type_: str, path: str | Path) -> list[tuple[str, str]]:
    """(name, container_type) of every asset, without reading any data."""
    extensions = DATA_EXTENSIONS if type_ == "local_dir" else None
    return [(r.name, r.kind) for r in _connector(type_, path).list_resources(extensions=extensions)]


def read_asset(type_: str, path: str | Path, name: str, max_records: int, dialect: dict | None = None) -> pa.Table:
    """An asset as a table; `dialect`: how the datastore's CSV files are written, as registered."""
    return _connector(type_, path).read_table(name, max_records, dialect)
