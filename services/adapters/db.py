"""Database connections for the config store and the read models (SQLite by default).

SQLite runs in WAL mode so the API reads while the projector writes; a busy timeout makes
the API's small config writes wait for the projector's batch instead of failing.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path


class UnsupportedDatabase(Exception):
    pass


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise UnsupportedDatabase(f"unsupported database url {url!r}: only sqlite:///path is supported in this release")
    return Path(url[len("sqlite:///"):])


def connect(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: the violation indexes stay in memory while they grow
    conn.execute("PRAGMA wal_autocheckpoint=16384")  # checkpoint (and fsync) every 64 MiB of WAL, not 4
    return conn


class transaction:
    """`with transaction(conn):` BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
