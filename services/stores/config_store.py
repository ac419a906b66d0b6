"""Configuration tables: workspaces, tokens, uploads, mappings, policies, run ids.

Configuration is not a projection: the API writes it directly and replay never touches it.
Scans never read it after they are requested; the ledger carries a snapshot instead. A scan
request itself is not configuration: it is its RunScan command on the ledger, which the
projector shows (projections: rm_scan_requests, then rm_scans).
"""
from __future__ import annotations

import hashlib
import sqlite3
import uuid
from typing import Any

import orjson

from services.adapters.db import transaction
from services.domain.envelope import utcnow

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
CREATE TABLE IF NOT EXISTS operation_ids (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scan_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS bootstrap_token (
    id INTEGER PRIMARY KEY CHECK (id = 1), token_hash TEXT NOT NULL);
-- the first table of answers kept token secrets in plain text and was not bound to the caller
DROP TABLE IF EXISTS idempotency_keys;
CREATE TABLE IF NOT EXISTS idempotency_requests (
    token_id TEXT NOT NULL, key TEXT NOT NULL, route TEXT NOT NULL, body_hash TEXT NOT NULL,
    state TEXT NOT NULL, status INTEGER, body BLOB, created_at REAL NOT NULL,
    PRIMARY KEY (token_id, key, route));
"""

JSON_COLUMNS = {"columns", "pii_findings", "mapping", "rules"}


def init(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def new_id() -> str:
    return str(uuid.uuid4())


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
        conn.execute("INSERT INTO bootstrap_token (id, token_hash) VALUES (1, ?)"
                     " ON CONFLICT(id) DO UPDATE SET token_hash = excluded.token_hash", (new_hash,))


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


# --- run ids ---

def new_operation_id(conn, scan_id: str) -> int:
    """The integer run id of seed 003, from a sequence of the API's; it travels in the scan's
    RunScan command and snapshot, so replay keeps it. An id whose command was never written
    (the API answered 503) is a gap in the sequence, nothing more. The same scan id (an
    Idempotency-Key's retry) gets the same run id."""
    conn.execute("INSERT INTO operation_ids (scan_id) VALUES (?) ON CONFLICT(scan_id) DO NOTHING", (scan_id,))
    return conn.execute("SELECT id FROM operation_ids WHERE scan_id = ?", (scan_id,)).fetchone()[0]


# --- idempotency keys: a retried POST returns the first answer ---
# A key belongs to one token and one route, and to the hash of the body it came with. It is
# reserved (a `pending` row under the primary key) before the work is done, so of concurrent
# requests with one key only the first does the work; the answer replaces the reservation.

def reserve_key(conn, token_id: str, key: str, route: str, body_hash: str, now: float, ttl_s: float,
                pending_ttl_s: float) -> dict[str, Any] | None:
    """Reserve the key (None: ours now) or return the row that holds it (pending or done)."""
    with transaction(conn):
        conn.execute("DELETE FROM idempotency_requests WHERE created_at < ? OR (state = 'pending' AND created_at < ?)",
                     (now - ttl_s, now - pending_ttl_s))
        inserted = conn.execute(
            "INSERT INTO idempotency_requests (token_id, key, route, body_hash, state, created_at)"
            " VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING",
            (token_id, key, route, body_hash, now)).rowcount
        if inserted:
            return None
        row = conn.execute("SELECT body_hash, state, status, body FROM idempotency_requests"
                           " WHERE token_id = ? AND key = ? AND route = ?", (token_id, key, route)).fetchone()
    return dict(row)


def idempotent_row(conn, token_id: str, key: str, route: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT body_hash, state, status, body FROM idempotency_requests"
                       " WHERE token_id = ? AND key = ? AND route = ?", (token_id, key, route)).fetchone()
    return dict(row) if row else None


def remember_answer(conn, token_id: str, key: str, route: str, status: int, body: bytes) -> None:
    conn.execute("UPDATE idempotency_requests SET state = 'done', status = ?, body = ?"
                 " WHERE token_id = ? AND key = ? AND route = ?", (status, body, token_id, key, route))


def release_key(conn, token_id: str, key: str, route: str) -> None:
    """The work failed without an answer to keep: a retry runs it again."""
    conn.execute("DELETE FROM idempotency_requests WHERE token_id = ? AND key = ? AND route = ? AND state = 'pending'",
                 (token_id, key, route))
