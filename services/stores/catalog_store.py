"""Configuration tables of the monitor side: datastores, their assets, the assets' monitors;
and seed 004's connectors (the same sources: services/adapters/connectors/ reads both).

Datastores and assets (the operations API calls them containers) get integer ids, as
seed 003 shows them. An asset row is registered the first time a sync finds it and keeps
its id across syncs, so monitors attached to it survive a re-sync; the asset's profile
(columns, row count) is a read model built from the sync's events.
"""
from __future__ import annotations

import secrets
from typing import Any

import orjson

from services.domain.envelope import new_id, utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS datastores (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    path TEXT NOT NULL, resolved_path TEXT NOT NULL, created_at TEXT NOT NULL, deleted_at TEXT, dialect TEXT);
CREATE TABLE IF NOT EXISTS assets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace_id TEXT NOT NULL, datastore_id INTEGER NOT NULL,
    name TEXT NOT NULL, container_type TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (datastore_id, name));
CREATE TABLE IF NOT EXISTS monitors (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, asset_id INTEGER NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, severity TEXT NOT NULL, enabled INTEGER NOT NULL, params TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS monitors_asset ON monitors (workspace_id, asset_id);
CREATE TABLE IF NOT EXISTS connectors (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    config TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted_at TEXT);
CREATE INDEX IF NOT EXISTS connectors_workspace ON connectors (workspace_id, deleted_at);
"""


def init(conn) -> None:
    """The tables in their current shape (an older database's: services.stores.migrations)."""
    conn.executescript(SCHEMA)


# --- datastores ---

def add_datastore(conn, workspace_id: str, name: str, type_: str, path: str, resolved_path: str,
                  dialect: dict | None = None) -> dict[str, Any]:
    now = utcnow()
    new_id = conn.execute("INSERT INTO datastores (workspace_id, name, type, path, resolved_path, created_at, dialect)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                          (workspace_id, name, type_, path, resolved_path, now,
                           orjson.dumps(dialect).decode() if dialect else None)).fetchone()[0]
    return get_datastore(conn, workspace_id, new_id)


def _datastore(row) -> dict[str, Any] | None:
    out = dict(row) if row is not None else None
    if out is not None:
        out["dialect"] = orjson.loads(out["dialect"]) if out.get("dialect") else None
    return out


def get_datastore(conn, workspace_id: str, datastore_id: int) -> dict[str, Any] | None:
    return _datastore(conn.execute("SELECT * FROM datastores WHERE id = ? AND workspace_id = ? AND deleted_at IS NULL",
                                   (datastore_id, workspace_id)).fetchone())


def list_datastores(conn, workspace_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM datastores WHERE workspace_id = ? AND deleted_at IS NULL ORDER BY id",
                        (workspace_id,))
    return [_datastore(r) for r in rows]


def delete_datastore(conn, workspace_id: str, datastore_id: int) -> bool:
    """Hidden, not erased: past runs still name it."""
    return conn.execute("UPDATE datastores SET deleted_at = ? WHERE id = ? AND workspace_id = ? AND deleted_at IS NULL",
                        (utcnow(), datastore_id, workspace_id)).rowcount > 0


# --- assets ---

def register_assets(conn, workspace_id: str, datastore_id: int, found: list[tuple[str, str]]) -> None:
    """(name, container_type) pairs a sync found; known ones keep their ids."""
    now = utcnow()
    conn.executemany("INSERT INTO assets (workspace_id, datastore_id, name, container_type, created_at)"
                     " VALUES (?, ?, ?, ?, ?) ON CONFLICT (datastore_id, name) DO NOTHING",
                     [(workspace_id, datastore_id, name, kind, now) for name, kind in found])


ASSET_SELECT = ("SELECT a.*, d.name AS datastore_name, d.type AS datastore_type, d.path AS datastore_path,"
                " d.resolved_path, d.dialect AS datastore_dialect"
                " FROM assets a JOIN datastores d ON d.id = a.datastore_id AND d.deleted_at IS NULL")


def list_assets(conn, workspace_id: str, datastore_id: int | None = None) -> list[dict[str, Any]]:
    sql, args = f"{ASSET_SELECT} WHERE a.workspace_id = ?", [workspace_id]
    if datastore_id is not None:
        sql += " AND a.datastore_id = ?"
        args.append(datastore_id)
    return [dict(r) for r in conn.execute(sql + " ORDER BY a.id", args)]


def get_asset(conn, workspace_id: str, asset_id: int) -> dict[str, Any] | None:
    row = conn.execute(f"{ASSET_SELECT} WHERE a.id = ? AND a.workspace_id = ?", (asset_id, workspace_id)).fetchone()
    return dict(row) if row else None


# --- monitors ---

def _monitor(row) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    out["params"] = orjson.loads(out["params"])
    out["enabled"] = bool(out["enabled"])
    return out


def add_monitor(conn, workspace_id: str, asset_id: int, spec: dict) -> dict[str, Any]:
    now = utcnow()
    monitor_id = new_id()
    conn.execute("INSERT INTO monitors (id, workspace_id, asset_id, name, type, severity, enabled, params, created_at,"
                 " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (monitor_id, workspace_id, asset_id, spec["name"], spec["type"], spec["severity"],
                  int(spec["enabled"]), orjson.dumps(spec["params"]).decode(), now, now))
    return get_monitor(conn, workspace_id, asset_id, monitor_id)


def get_monitor(conn, workspace_id: str, asset_id: int, monitor_id: str) -> dict[str, Any] | None:
    return _monitor(conn.execute("SELECT * FROM monitors WHERE id = ? AND asset_id = ? AND workspace_id = ?",
                                 (monitor_id, asset_id, workspace_id)).fetchone())


def list_monitors(conn, workspace_id: str, asset_id: int | None = None, enabled_only: bool = False) -> list[dict]:
    sql, args = "SELECT * FROM monitors WHERE workspace_id = ?", [workspace_id]
    if asset_id is not None:
        sql += " AND asset_id = ?"
        args.append(asset_id)
    if enabled_only:
        sql += " AND enabled = 1"
    # rowid is creation order, even for monitors created within the same millisecond
    return [_monitor(r) for r in conn.execute(sql + " ORDER BY asset_id, rowid", args)]


def update_monitor(conn, workspace_id: str, asset_id: int, monitor_id: str, spec: dict) -> dict[str, Any] | None:
    conn.execute("UPDATE monitors SET name = ?, type = ?, severity = ?, enabled = ?, params = ?, updated_at = ?"
                 " WHERE id = ? AND asset_id = ? AND workspace_id = ?",
                 (spec["name"], spec["type"], spec["severity"], int(spec["enabled"]),
                  orjson.dumps(spec["params"]).decode(), utcnow(), monitor_id, asset_id, workspace_id))
    return get_monitor(conn, workspace_id, asset_id, monitor_id)


def delete_monitor(conn, workspace_id: str, asset_id: int, monitor_id: str) -> bool:
    return conn.execute("DELETE FROM monitors WHERE id = ? AND asset_id = ? AND workspace_id = ?",
                        (monitor_id, asset_id, workspace_id)).rowcount > 0


# --- connectors (seed 004) ---

def new_connector_id() -> str:
    return f"conn-{secrets.token_hex(8)}"


def _connector(row) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    out["config"] = orjson.loads(out["config"])
    return out


def add_connector(conn, workspace_id: str, name: str, type_: str, config: dict) -> dict[str, Any]:
    """`config` as services.adapters.connectors.validate_config returned it: references to secrets, never secrets."""
    now, connector_id = utcnow(), new_connector_id()
    conn.execute("INSERT INTO connectors (id, workspace_id, name, type, config, created_at, updated_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (connector_id, workspace_id, name, type_, orjson.dumps(config).decode(), now, now))
    return get_connector(conn, workspace_id, connector_id)


def get_connector(conn, workspace_id: str, connector_id: str, deleted: bool = False) -> dict[str, Any] | None:
    """A live connector of the workspace; with deleted=True a deleted one too (past scans name it)."""
    sql = "SELECT * FROM connectors WHERE id = ? AND workspace_id = ?" + ("" if deleted else " AND deleted_at IS NULL")
    return _connector(conn.execute(sql, (connector_id, workspace_id)).fetchone())


def list_connectors(conn, workspace_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM connectors WHERE workspace_id = ? AND deleted_at IS NULL ORDER BY rowid",
                        (workspace_id,))
    return [_connector(r) for r in rows]


def delete_connector(conn, workspace_id: str, connector_id: str) -> bool:
    """Hidden, not erased: past scans still name it."""
    now = utcnow()
    return conn.execute("UPDATE connectors SET deleted_at = ?, updated_at = ? WHERE id = ? AND workspace_id = ?"
                        " AND deleted_at IS NULL", (now, now, connector_id, workspace_id)).rowcount > 0
