"""A workspace's own detection settings (seed 004, issue 19): its custom detectors and its allow-list.

Configuration, like connectors: a scan takes a snapshot of both when it is requested (its RunScan
carries the custom detectors' specs and the allow-list's keys), so what a scan ran with is on the
ledger and a later change touches no scan already requested. The allow-list holds each value's
key (services.domain.detectors.validate.allow_key: a hash of the value without spaces, dashes
or dots), and a masked form to show; never the value.
"""
from __future__ import annotations

import secrets
from typing import Any

from services.domain.envelope import utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS custom_detectors (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL, pattern TEXT NOT NULL, checksum TEXT,
    confidence REAL NOT NULL, created_at TEXT NOT NULL, UNIQUE (workspace_id, name));
CREATE TABLE IF NOT EXISTS allowlist (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, value_key TEXT NOT NULL, masked TEXT NOT NULL, label TEXT,
    created_at TEXT NOT NULL, UNIQUE (workspace_id, value_key));
"""
MAX_CUSTOM = 50  # per workspace: every chunk of every scan carries them
MAX_ALLOWED = 1000  # per workspace, as keys in every chunk's work


def init(conn) -> None:
    conn.executescript(SCHEMA)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def add_custom(conn, workspace_id: str, spec: dict) -> dict[str, Any] | None:
    """The detector as stored; None when the workspace has one of that name, or MAX_CUSTOM already."""
    if count(conn, "custom_detectors", workspace_id) >= MAX_CUSTOM:
        return None
    row = {"id": _new_id("det"), "workspace_id": workspace_id, "created_at": utcnow(), "checksum": None, **spec}
    taken = conn.execute(
        "INSERT INTO custom_detectors (id, workspace_id, name, pattern, checksum, confidence, created_at)"
        " VALUES (:id, :workspace_id, :name, :pattern, :checksum, :confidence, :created_at)"
        " ON CONFLICT(workspace_id, name) DO NOTHING", row).rowcount
    return _public(row) if taken else None


def list_custom(conn, workspace_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM custom_detectors WHERE workspace_id = ? ORDER BY name", (workspace_id,))
    return [_public(dict(r)) for r in rows]


def add_allowed(conn, workspace_id: str, value_key: str, masked: str, label: str | None) -> dict[str, Any]:
    """The entry (the same one when the value is listed already); None at MAX_ALLOWED."""
    found = conn.execute("SELECT * FROM allowlist WHERE workspace_id = ? AND value_key = ?",
                         (workspace_id, value_key)).fetchone()
    if found is not None:
        return _public(dict(found))
    if count(conn, "allowlist", workspace_id) >= MAX_ALLOWED:
        return None
    row = {"id": _new_id("allow"), "workspace_id": workspace_id, "value_key": value_key, "masked": masked,
           "label": label, "created_at": utcnow()}
    conn.execute("INSERT INTO allowlist (id, workspace_id, value_key, masked, label, created_at)"
                 " VALUES (:id, :workspace_id, :value_key, :masked, :label, :created_at)", row)
    return _public(row)


def list_allowed(conn, workspace_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM allowlist WHERE workspace_id = ? ORDER BY created_at, id", (workspace_id,))
    return [_public(dict(r)) for r in rows]


def delete(conn, table: str, workspace_id: str, item_id: str) -> bool:
    assert table in ("custom_detectors", "allowlist")
    return conn.execute(f"DELETE FROM {table} WHERE workspace_id = ? AND id = ?", (workspace_id, item_id)).rowcount == 1


def count(conn, table: str, workspace_id: str) -> int:
    assert table in ("custom_detectors", "allowlist")
    return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE workspace_id = ?", (workspace_id,)).fetchone()[0]


def snapshot(conn, workspace_id: str) -> dict[str, Any]:
    """What a scan requested now runs with: the custom detectors' specs and the allow-list's keys."""
    custom = [{k: r[k] for k in ("name", "pattern", "checksum", "confidence")} for r in conn.execute(
        "SELECT * FROM custom_detectors WHERE workspace_id = ? ORDER BY name", (workspace_id,))]
    keys = [r[0] for r in conn.execute("SELECT value_key FROM allowlist WHERE workspace_id = ? ORDER BY value_key",
                                       (workspace_id,))]
    return {"custom_detectors": custom, "allowlist": keys}


def refs(conn, workspace_id: str) -> list[tuple[str, str]]:
    """The rows a snapshot is taken from (services.stores.config_log.versions)."""
    return [(table, r[0]) for table in ("custom_detectors", "allowlist") for r in conn.execute(
        f"SELECT id FROM {table} WHERE workspace_id = ? ORDER BY id", (workspace_id,))]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("workspace_id", "value_key")}
