"""The API's own bookkeeping of requests: seed 003's integer run ids, and Idempotency-Key answers.

Neither is configuration nor a read model: a run id travels in its scan's RunScan command (so
replay keeps it), and a kept answer only lets a retried POST return the first one.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from services.adapters.db import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS operation_ids (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scan_id TEXT NOT NULL UNIQUE);
-- the first table of answers kept token secrets in plain text and was not bound to the caller
DROP TABLE IF EXISTS idempotency_keys;
CREATE TABLE IF NOT EXISTS idempotency_requests (
    token_id TEXT NOT NULL, key TEXT NOT NULL, route TEXT NOT NULL, body_hash TEXT NOT NULL,
    state TEXT NOT NULL, status INTEGER, body BLOB, created_at REAL NOT NULL,
    PRIMARY KEY (token_id, key, route));
"""


def init(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


# --- run ids ---

def new_operation_id(conn, scan_id: str) -> int:
    """The integer run id of seed 003, from a sequence of the API's; it travels in the scan's
    RunScan command and snapshot, so replay keeps it. An id whose command was never written
    (the API answered 503) is a gap in the sequence, nothing more. The same scan id (an
    Idempotency-Key's retry) gets the same run id."""
    conn.execute("INSERT INTO operation_ids (scan_id) VALUES (?) ON CONFLICT(scan_id) DO NOTHING", (scan_id,))
    return conn.execute("SELECT id FROM operation_ids WHERE scan_id = ?", (scan_id,)).fetchone()[0]


def issued(conn, scan_id: str) -> bool:
    """Whether an API of this system gave out the scan id (its command may not be projected yet)."""
    return conn.execute("SELECT 1 FROM operation_ids WHERE scan_id = ?", (scan_id,)).fetchone() is not None


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
