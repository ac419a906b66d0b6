"""Confinement (decisions.md, issue 10): what a workspace may reach.

A local path resolves inside the workspace's datastore root and clear of everything the system
writes; a secret is an environment variable under the workspace's prefix or a file under its
secrets directory.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from services.adapters.connectors.base import ConnectorError
from services.adapters.db import UnsupportedDatabase, sqlite_path
from services.settings import Settings


def workspace_root(settings: Settings, workspace_id: str) -> Path:
    """The one directory a workspace's local sources must resolve inside."""
    root = Path(settings.datastore_root).resolve()
    if settings.datastore_root_per_workspace:
        return root / workspace_id
    return root


def system_paths(settings: Settings) -> list[Path]:
    """Everything the system writes or keeps secret: never reachable as (or inside) a source."""
    paths = [settings.data_dir, settings.blob_dir, settings.broker_dir, settings.cache_dir]
    if settings.secrets_dir:
        paths.append(settings.secrets_dir)
    try:
        db = sqlite_path(settings.db_url)
        paths += [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    except UnsupportedDatabase:
        pass
    return [Path(p).resolve() for p in paths]


def _overlaps(path: Path, other: Path) -> bool:
    return path == other or other in path.parents or path in other.parents


def resolve_path(root: Path, path: str, type_: str, forbidden: list[Path] = ()) -> Path:
    """A path given by an API user, resolved (symlinks too) and confined; ConnectorError (400) otherwise."""
    root = Path(root).resolve()
    if "\x00" in path:
        raise ConnectorError(f'path "{path!r}" is not a valid path')
    try:
        resolved = (root / path).resolve()  # resolves symlinks too: a link out of the root is outside
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"path is not a valid path: {exc}") from None
    if resolved != root and root not in resolved.parents:
        raise ConnectorError(f'path "{path}" is outside the datastore root')
    if any(_overlaps(resolved, Path(f)) for f in forbidden):
        raise ConnectorError(f'path "{path}" holds or is inside the system\'s own data: not a datastore')
    if type_ == "local_dir" and not resolved.is_dir():
        raise ConnectorError(f'path "{path}" is not a directory')
    if type_ == "sqlite" and not resolved.is_file():
        raise ConnectorError(f'path "{path}" is not a file')
    if type_ == "sqlite" and not _is_sqlite(resolved):
        raise ConnectorError(f'path "{path}" is not a SQLite database')
    return resolved


def _is_sqlite(path: Path) -> bool:
    """Opens read-only as a database and has a schema to read (a CSV renamed .db does not)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.Error:
        return False


def check_allowed(settings: Settings, workspace_id: str, type_: str, path: str | Path) -> Path:
    """A registered source again, before it is read: still inside its workspace's root
    (symlinks may have changed since) and clear of the system's own data (409 otherwise).

    A relative path (a BYOC worker's: the deployment config gives the path as registered, never
    the server's) is relative to the root, whatever the process's working directory."""
    root = workspace_root(settings, workspace_id)
    resolved = (root / path).resolve()  # an absolute path stays itself
    if resolved != root and root not in resolved.parents:
        raise ConnectorError("the datastore is outside its workspace's datastore root", 409, "forbidden")
    if any(_overlaps(resolved, f) for f in system_paths(settings)):
        raise ConnectorError("the datastore holds or is inside the system's own data", 409, "forbidden")
    return resolved


def env_prefix(settings: Settings, workspace_id: str) -> str:
    """Environment variables a workspace may name: SCANLEDGER_SECRET_ (per-workspace roots:
    SCANLEDGER_SECRET_<WORKSPACE>__, the id upper-cased with `_` for `-`, ended by a double
    `_` that no workspace id gives, so `ws` never reaches `ws-a`'s), so no connector can send
    another variable of the process to an endpoint."""
    prefix = settings.secrets_env_prefix
    if settings.datastore_root_per_workspace:
        prefix += "".join(ch if ch.isalnum() else "_" for ch in workspace_id.upper()) + "__"
    return prefix


def secrets_root(settings: Settings, workspace_id: str) -> Path | None:
    """The directory a workspace's secret files must resolve inside (None: no secret files)."""
    base = settings.secrets_dir
    if not base:
        return None
    root = Path(base).resolve()
    return root / workspace_id if settings.datastore_root_per_workspace else root


def env_value(name: str) -> str | None:
    return os.environ.get(name) or None
