"""BYOC scans' API-side state: per-scan worker tokens and the leases on chunks.

Neither is part of the record: the chunks, their offers and everything a worker reports are on
the ledger (chunk.offered, then the same events the in-cluster evaluators write). A lease only
says which external worker holds a chunk right now; a lost lease makes the chunk claimable
again, and the chunk's deterministic event ids make a second run count nothing twice.

A claim is one conditional upsert, so two workers claiming at once never both get a chunk,
on SQLite as on PostgreSQL.
"""
from __future__ import annotations

import secrets
from typing import Any

from services.stores.config_store import hash_token, new_id

WORKER_TOKEN_PREFIX = "swt_"

SCHEMA = """
CREATE TABLE IF NOT EXISTS worker_tokens (
    token_hash TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, workspace_id TEXT NOT NULL, scan_id TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunk_leases (
    unit_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, attempt INTEGER NOT NULL, lease_id TEXT NOT NULL,
    worker_id TEXT NOT NULL, expires_at REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 1, chain_seq INTEGER NOT NULL DEFAULT 0, chain_prev TEXT NOT NULL DEFAULT '');
"""

# an offer still to be scanned: its unit has not reported, and no current lease says it is done
_OPEN = ("FROM rm_sensitive_offers o JOIN rm_units u ON u.unit_id = o.unit_id"
         " LEFT JOIN chunk_leases l ON l.unit_id = o.unit_id"
         " WHERE o.scan_id = ? AND u.status IN ('pending', 'running')"
         " AND NOT (l.unit_id IS NOT NULL AND l.attempt = o.attempt AND l.done = 1)")


def init(conn) -> None:
    """The tables in their current shape (an older database's: services.stores.migrations)."""
    conn.executescript(SCHEMA)


def add_worker_token(conn, token: str, workspace_id: str, scan_id: str, created_at: str) -> str:
    token_id = new_id()
    conn.execute("INSERT INTO worker_tokens (token_hash, id, workspace_id, scan_id, created_at) VALUES (?, ?, ?, ?, ?)",
                 (hash_token(token), token_id, workspace_id, scan_id, created_at))
    return token_id


def worker_token(conn, token: str) -> dict[str, Any] | None:
    """The token's row with its scan's status (None until the projector shows the scan)."""
    row = conn.execute("SELECT w.id, w.workspace_id, w.scan_id, s.status FROM worker_tokens w"
                       " LEFT JOIN rm_scans s ON s.scan_id = w.scan_id WHERE w.token_hash = ?",
                       (hash_token(token),)).fetchone()
    return dict(row) if row is not None else None


def claim(conn, scan_id: str, worker_id: str, lease_s: float, now: float) -> dict[str, Any]:
    """{"chunk": the offer's work event and lease, or None; "open": chunks not yet scanned}.

    A chunk is free when nobody leased its current attempt, or its lease expired."""
    offers = conn.execute(f"SELECT o.unit_id, o.attempt, o.work {_OPEN}"
                          " AND NOT (l.unit_id IS NOT NULL AND l.attempt = o.attempt AND l.expires_at > ?)"
                          " ORDER BY o.idx", (scan_id, now)).fetchall()
    for offer in offers:
        lease_id = secrets.token_hex(16)
        taken = conn.execute(
            "INSERT INTO chunk_leases (unit_id, scan_id, attempt, lease_id, worker_id, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(unit_id) DO UPDATE SET attempt = excluded.attempt,"
            " lease_id = excluded.lease_id, worker_id = excluded.worker_id, expires_at = excluded.expires_at,"
            " done = 0, claims = chunk_leases.claims + 1,"
            # a new attempt starts its chain; a taken-over lease continues the attempt's
            " chain_seq = CASE WHEN chunk_leases.attempt < excluded.attempt THEN 0 ELSE chunk_leases.chain_seq END,"
            " chain_prev = CASE WHEN chunk_leases.attempt < excluded.attempt THEN '' ELSE chunk_leases.chain_prev END"
            " WHERE chunk_leases.attempt < excluded.attempt"
            " OR (chunk_leases.done = 0 AND chunk_leases.expires_at <= ?)",
            (offer["unit_id"], scan_id, offer["attempt"], lease_id, worker_id, now + lease_s, now)).rowcount
        if taken == 1:
            return {"chunk": {"unit_id": offer["unit_id"], "attempt": offer["attempt"], "work": offer["work"],
                              "lease_id": lease_id}, "open": len(offers)}
    return {"chunk": None, "open": open_chunks(conn, scan_id)}


def open_chunks(conn, scan_id: str) -> int:
    return conn.execute(f"SELECT COUNT(*) {_OPEN}", (scan_id,)).fetchone()[0]


def lease(conn, scan_id: str, unit_id: str, lease_id: str) -> dict[str, Any] | None:
    """The lease a report names, while it is its holder's (not taken over, not done)."""
    row = conn.execute("SELECT l.unit_id, l.attempt, l.worker_id, l.chain_seq, l.chain_prev, o.work FROM chunk_leases l"
                       " JOIN rm_sensitive_offers o ON o.unit_id = l.unit_id AND o.attempt = l.attempt"
                       " WHERE l.unit_id = ? AND l.scan_id = ? AND l.lease_id = ? AND l.done = 0",
                       (unit_id, scan_id, lease_id)).fetchone()
    return dict(row) if row is not None else None


def renew(conn, unit_id: str, lease_id: str, lease_s: float, now: float, done: bool = False,
          chain: tuple[int, str] | None = None) -> bool:
    """A report is a heartbeat: the lease runs another lease_s (or ends, done, with the chunk's result);
    `chain`: where the chunk's chain stands after the events the report wrote."""
    if chain is None:
        return conn.execute("UPDATE chunk_leases SET expires_at = ?, done = ? WHERE unit_id = ? AND lease_id = ?"
                            " AND done = 0", (now + lease_s, int(done), unit_id, lease_id)).rowcount == 1
    return conn.execute("UPDATE chunk_leases SET expires_at = ?, done = ?, chain_seq = ?, chain_prev = ?"
                        " WHERE unit_id = ? AND lease_id = ? AND done = 0",
                        (now + lease_s, int(done), *chain, unit_id, lease_id)).rowcount == 1


def release(conn, unit_id: str, lease_id: str, now: float) -> bool:
    """The holder gives the chunk back: its lease ends now (claims still counts it)."""
    return conn.execute("UPDATE chunk_leases SET expires_at = ? WHERE unit_id = ? AND lease_id = ? AND done = 0",
                        (now, unit_id, lease_id)).rowcount == 1


def leases(conn, scan_id: str) -> dict[str, dict[str, Any]]:
    """Each leased chunk's worker and how often it was claimed (GET …/workers shows them)."""
    rows = conn.execute("SELECT unit_id, worker_id, claims, expires_at, done FROM chunk_leases WHERE scan_id = ?",
                        (scan_id,)).fetchall()
    return {r["unit_id"]: dict(r) for r in rows}


def new_worker_token() -> str:
    return WORKER_TOKEN_PREFIX + secrets.token_urlsafe(32)
