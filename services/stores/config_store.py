"""Configuration tables: workspaces, tokens, uploads, mappings, policies.

Every change to these rows goes on the log before it is answered (services.stores.config_log), so
replay rebuilds them too. Scans never read them after they are requested; the ledger carries a
snapshot instead, and the version of each row it was taken from. A scan
request itself is not configuration: it is its RunScan command on the ledger, which the
projector shows (projections: rm_scan_requests, then rm_scans).
"""
from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import orjson

from services.adapters.db import transaction
from services.domain.envelope import new_id, utcnow

DEFAULT_WORKSPACE = "default"

SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    role TEXT NOT NULL, user_name TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, filename TEXT, raw_blob TEXT NOT NULL, blob TEXT NOT NULL,
    record_count INTEGER NOT NULL, columns TEXT NOT NULL, pii_findings TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mappings (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, upload_id TEXT NOT NULL REFERENCES uploads(id),
    mapping TEXT NOT NULL, temporal_scale TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    rules TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
DROP TABLE IF EXISTS scan_requests; -- where requests were kept before the ledger alone recorded them
CREATE TABLE IF NOT EXISTS bootstrap_token (
    id INTEGER PRIMARY KEY CHECK (id = 1), token_hash TEXT NOT NULL);
"""

JSON_COLUMNS = {"columns", "pii_findings", "mapping", "rules"}


def init(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        out[key] = orjson.loads(out[key])
    return out


def _one(conn, sql: str, *args) -> dict[str, Any] | None:
    return _row(conn.execute(sql, args).fetchone())


# --- workspaces and tokens ---

def ensure_workspace(conn, workspace_id: str, name: str | None = None) -> None:
    conn.execute("INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
                 (workspace_id, name or workspace_id, utcnow()))


def add_token(conn, token: str, workspace_id: str, role: str, user_name: str) -> str:
    token_id = new_id()
    conn.execute(
        "INSERT INTO tokens (token_hash, id, workspace_id, role, user_name, created_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(token_hash) DO NOTHING",
        (hash_token(token), token_id, workspace_id, role, user_name, utcnow()))
    return token_id


def bootstrap_admin(conn, token: str) -> None:
    """The bootstrap admin token of the default workspace (from SCANLEDGER_ADMIN_TOKEN or `up`).

    Rotating it (a new SCANLEDGER_ADMIN_TOKEN, then a restart) revokes the previous one. The
    bootstrap token's hash is kept in `bootstrap_token`; a database from before that table
    had its bootstrap token as the default workspace's first token (nothing can issue one
    before it)."""
    new_hash = hash_token(token)
    with transaction(conn):
        ensure_workspace(conn, DEFAULT_WORKSPACE, "Default workspace")
        row = conn.execute("SELECT token_hash FROM bootstrap_token WHERE id = 1").fetchone()
        if row is None:
            row = conn.execute("SELECT token_hash FROM tokens WHERE workspace_id = ? AND role = 'Admin'"
                               " ORDER BY rowid LIMIT 1", (DEFAULT_WORKSPACE,)).fetchone()
        if row is not None and row["token_hash"] != new_hash:
            conn.execute("UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                         (utcnow(), row["token_hash"]))
        add_token(conn, token, DEFAULT_WORKSPACE, "Admin", "admin")
        # unchanged, it is not written: every process that starts would otherwise log a change to it
        conn.execute("INSERT INTO bootstrap_token (id, token_hash) VALUES (1, ?) ON CONFLICT(id)"
                     " DO UPDATE SET token_hash = excluded.token_hash"
                     " WHERE bootstrap_token.token_hash != excluded.token_hash",
                     (new_hash,))


def list_tokens(conn, workspace_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT id, role, user_name, created_at FROM tokens"
                        " WHERE workspace_id = ? AND revoked_at IS NULL ORDER BY rowid", (workspace_id,))
    return [dict(r) for r in rows]


def revoke_token(conn, workspace_id: str, token_id: str) -> bool:
    return conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND workspace_id = ? AND revoked_at IS NULL",
                        (utcnow(), token_id, workspace_id)).rowcount > 0


def get_workspace(conn, workspace_id: str) -> dict[str, Any] | None:
    return _one(conn, "SELECT * FROM workspaces WHERE id = ?", workspace_id)


def principal(conn, token: str) -> dict[str, Any] | None:
    return _one(conn, "SELECT id, workspace_id, role, user_name FROM tokens"
                      " WHERE token_hash = ? AND revoked_at IS NULL", hash_token(token))


# --- uploads and mappings ---

def add_upload(conn, workspace_id: str, filename: str | None, raw_blob: str, blob: str, record_count: int,
               columns: list[str], pii_findings: list[dict]) -> dict[str, Any]:
    upload = {"id": new_id(), "workspace_id": workspace_id, "filename": filename, "raw_blob": raw_blob, "blob": blob,
              "record_count": record_count, "columns": columns, "pii_findings": pii_findings, "created_at": utcnow()}
    conn.execute(
        "INSERT INTO uploads (id, workspace_id, filename, raw_blob, blob, record_count, columns, pii_findings,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (upload["id"], workspace_id, filename, raw_blob, blob, record_count, orjson.dumps(columns).decode(),
         orjson.dumps(pii_findings).decode(), upload["created_at"]))
    return upload


def get_upload(conn, workspace_id: str, upload_id: str) -> dict[str, Any] | None:
    return _one(conn, "SELECT * FROM uploads WHERE id = ? AND workspace_id = ?", upload_id, workspace_id)


def add_mapping(conn, workspace_id: str, upload_id: str, mapping: dict[str, str], temporal_scale: str | None) -> dict:
    row = {"id": new_id(), "workspace_id": workspace_id, "upload_id": upload_id, "mapping": mapping,
           "temporal_scale": temporal_scale, "created_at": utcnow()}
    conn.execute("INSERT INTO mappings (id, workspace_id, upload_id, mapping, temporal_scale, created_at)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 (row["id"], workspace_id, upload_id, orjson.dumps(mapping).decode(), temporal_scale,
                  row["created_at"]))
    return row


def get_mapping(conn, workspace_id: str, mapping_id: str) -> dict[str, Any] | None:
    return _one(conn, "SELECT * FROM mappings WHERE id = ? AND workspace_id = ?", mapping_id, workspace_id)


# --- policies ---

def add_policy(conn, workspace_id: str, name: str, description: str | None, rules: list[dict]) -> dict[str, Any]:
    now = utcnow()
    policy = {"id": new_id(), "workspace_id": workspace_id, "name": name, "description": description,
              "rules": rules, "created_at": now, "updated_at": now}
    conn.execute("INSERT INTO policies (id, workspace_id, name, description, rules, created_at, updated_at)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (policy["id"], workspace_id, name, description, orjson.dumps(rules).decode(), now, now))
    return policy


def get_policy(conn, workspace_id: str, policy_id: str) -> dict[str, Any] | None:
    return _one(conn, "SELECT * FROM policies WHERE id = ? AND workspace_id = ?", policy_id, workspace_id)


def list_policies(conn, workspace_id: str) -> list[dict[str, Any]]:
    # in creation order
    rows = conn.execute("SELECT * FROM policies WHERE workspace_id = ? ORDER BY rowid", (workspace_id,))
    return [_row(r) for r in rows]


def update_policy(conn, workspace_id: str, policy_id: str, name: str, description: str | None,
                  rules: list[dict]) -> dict[str, Any] | None:
    cur = conn.execute("UPDATE policies SET name = ?, description = ?, rules = ?, updated_at = ?"
                       " WHERE id = ? AND workspace_id = ?",
                       (name, description, orjson.dumps(rules).decode(), utcnow(), policy_id, workspace_id))
    return get_policy(conn, workspace_id, policy_id) if cur.rowcount else None


def delete_policy(conn, workspace_id: str, policy_id: str) -> bool:
    return conn.execute("DELETE FROM policies WHERE id = ? AND workspace_id = ?",
                        (policy_id, workspace_id)).rowcount > 0
