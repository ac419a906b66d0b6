"""Datastores at the edge: a directory of files or a SQLite database, read as Arrow tables.

Every file with a data extension in a directory is an asset (named by its path relative to
the directory); every table of a SQLite database is one. Paths are confined to a configured
root, so an API user can point only at data the operator exposed:

- `SCANLEDGER_DATASTORE_ROOT` (default: the working directory) is the root of every
  workspace; with `SCANLEDGER_DATASTORE_ROOT_PER_WORKSPACE=1` each workspace has its own,
  `<root>/<workspace_id>/`, and reaches nothing outside it.
- What the system itself writes (the data dir: database, blob store, broker data, logs, the
  admin-token file; the database file wherever it is; the broker cache) is never a
  datastore, even inside the root: a path in it, or a directory that holds it, is a 400.
- Paths are resolved with their symlinks, when registered and again on every read (sync and
  scan), and a file of a directory datastore must resolve inside that directory.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa

from services.adapters.db import UnsupportedDatabase, sqlite_path
from services.adapters.readers import InputError, detect_format, read_table

DATA_EXTENSIONS = (".csv", ".json", ".jsonl", ".ndjson", ".parquet")


class DatastoreError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class AssetReadError(Exception):
    """An asset that cannot be read: its monitors fail with this message."""


def workspace_root(settings, workspace_id: str) -> Path:
    """The one directory a workspace's datastores must resolve inside."""
    root = Path(settings.datastore_root).resolve()
    if getattr(settings, "datastore_root_per_workspace", False):
        return root / workspace_id
    return root


def system_paths(settings) -> list[Path]:
    """Everything the system writes: never reachable as (or inside) a datastore."""
    paths = [settings.data_dir, settings.blob_dir, settings.broker_dir, settings.cache_dir]
    try:
        db = sqlite_path(settings.db_url)
        paths += [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    except UnsupportedDatabase:
        pass
    return [Path(p).resolve() for p in paths]


def _overlaps(path: Path, other: Path) -> bool:
    return path == other or other in path.parents or path in other.parents


def resolve_path(root: Path, path: str, type_: str, forbidden: list[Path] = ()) -> Path:
    root = Path(root).resolve()
    if "\x00" in path:
        raise DatastoreError(f'path "{path!r}" is not a valid path')
    try:
        resolved = (root / path).resolve()  # resolves symlinks too: a link out of the root is outside
    except (OSError, ValueError) as exc:
        raise DatastoreError(f"path is not a valid path: {exc}") from None
    if resolved != root and root not in resolved.parents:
        raise DatastoreError(f'path "{path}" is outside the datastore root')
    if any(_overlaps(resolved, Path(f)) for f in forbidden):
        raise DatastoreError(f'path "{path}" holds or is inside the system\'s own data: not a datastore')
    if type_ == "local_dir" and not resolved.is_dir():
        raise DatastoreError(f'path "{path}" is not a directory')
    if type_ == "sqlite" and not resolved.is_file():
        raise DatastoreError(f'path "{path}" is not a file')
    return resolved


def check_allowed(settings, workspace_id: str, type_: str, path: str | Path) -> Path:
    """A registered datastore again, before it is read: still inside its workspace's root
    (symlinks may have changed since) and clear of the system's own data."""
    root = workspace_root(settings, workspace_id)
    resolved = Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        raise DatastoreError("the datastore is outside its workspace's datastore root", 409)
    if any(_overlaps(resolved, f) for f in system_paths(settings)):
        raise DatastoreError("the datastore holds or is inside the system's own data", 409)
    return resolved


def list_containers(type_: str, path: str | Path) -> list[tuple[str, str]]:
    """(name, container_type) of every asset, without reading any data."""
    path = Path(path)
    if type_ == "local_dir":
        if not path.is_dir():
            raise DatastoreError(f'directory "{path}" is gone', 409)
        inside = path.resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_EXTENSIONS
                       and inside in p.resolve().parents)  # a link out of the directory is not its file
        return [(p.relative_to(path).as_posix(), "file") for p in files]
    try:
        with _open_sqlite(path) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                              " ORDER BY name").fetchall()
    except sqlite3.Error as exc:
        raise DatastoreError(f'cannot read SQLite database "{path.name}": {exc}', 409) from None
    return [(name, "table") for (name,) in rows]


def read_asset(type_: str, path: str | Path, name: str, max_records: int) -> pa.Table:
    path = Path(path)
    if type_ == "local_dir":
        return _read_file(path, name, max_records)
    return _read_table(path, name, max_records)


def _read_file(root: Path, name: str, max_records: int) -> pa.Table:
    file = (root / name).resolve()
    if root.resolve() not in file.parents or not file.is_file():
        raise AssetReadError(f'file "{name}" not found')
    try:
        return read_table(file.read_bytes(), detect_format(file.name, None), max_records)
    except InputError as exc:
        raise AssetReadError(f'cannot read "{name}": {exc.message}') from None


def _open_sqlite(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


SQLITE_TYPES = (("INT", pa.int64()), ("REAL", pa.float64()), ("FLOA", pa.float64()), ("DOUB", pa.float64()),
                ("BOOL", pa.bool_()))


def _arrow_type(declared: str) -> pa.DataType:
    """SQLite's type affinity rules, roughly: declared INT → int64, REAL/FLOAT/DOUBLE → float64."""
    upper = (declared or "").upper()
    return next((t for marker, t in SQLITE_TYPES if marker in upper), pa.string())


def _read_table(path: Path, name: str, max_records: int) -> pa.Table:
    try:
        with _open_sqlite(path) as db:
            quoted = '"' + name.replace('"', '""') + '"'
            columns = db.execute(f"PRAGMA table_info({quoted})").fetchall()
            if not columns:
                raise AssetReadError(f'table "{name}" not found')
            rows = db.execute(f"SELECT * FROM {quoted} LIMIT ?", (max_records + 1,)).fetchall()
    except sqlite3.Error as exc:
        raise AssetReadError(f'cannot read table "{name}": {exc}') from None
    if len(rows) > max_records:
        raise AssetReadError(f'table "{name}" has more than {max_records} rows')
    arrays = {}
    for i, (_, col, declared, *_rest) in enumerate(columns):
        values = [r[i] for r in rows]
        wanted = _arrow_type(declared)
        try:
            arrays[col] = pa.array(values, type=wanted)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed values in a loosely typed column
            arrays[col] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.table(arrays)
