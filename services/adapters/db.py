"""Database connections for the config store and the read models: SQLite by default, PostgreSQL
for a `postgresql://` URL (services/adapters/pg.py runs the same SQL there, with the same locking).

SQLite runs in WAL mode so the API reads while the projector writes; a busy timeout makes
the API's small config writes wait for the projector's batch instead of failing.

The API uses ConnectionPerThread: one object its code passes around as `db`, which runs each
statement on the calling thread's own connection. The API calls it from a few database
threads, never from the event loop (api/web/db_work.py), so a write waiting out the busy
timeout holds up one thread, not every request; and a `with transaction(db):` stays on one
connection, so it is atomic against the other threads as against the projector. (Short reads
run on the loop's own connection, one without a busy timeout whose statements stop at a budget.)
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg

BUSY_TIMEOUT_MS = 30_000
WAL_CHECKPOINT_BYTES = 64 << 20


class UnsupportedDatabase(Exception):
    pass


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Errors a record's own values cause (a NULL where none may be, a value the database cannot take): the
# projector dead-letters that record. Any other database error is the database's, not the record's.
RECORD_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError,
                 psycopg.errors.IntegrityError, psycopg.errors.DataError)
DATABASE_ERRORS = (sqlite3.Error, psycopg.Error)


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise UnsupportedDatabase(f"unsupported database url {url!r}: give sqlite:///path or "
                                  "postgresql://user@host:port/database (SCANLEDGER_DATABASE_URL)")
    return Path(url[len("sqlite:///"):])


def connect(url: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
    """A connection with the stdlib sqlite3 interface: sqlite3's own, or PostgreSQL's behind it."""
    if is_postgres(url):
        from services.adapters import pg

        return pg.Connection(url, busy_timeout_ms)
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # A new database's pages (an existing one keeps its own): a violation's row is about 1 KB, and with
    # 4 KiB pages each commit wrote twice the WAL frames, 1.0 against 0.5 µs of CPU a violation
    # (docs/performance.md, fifth round); reads of a page of violations cost the same.
    conn.execute("PRAGMA page_size=16384")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: the violation indexes stay in memory while they grow
    # checkpoint (and fsync) every 64 MiB of WAL, not every 1,000 pages (4 or 16 MiB); in pages of this database's size
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_BYTES // page_size}")
    return conn


def on_postgres(conn) -> bool:
    """Whether this connection (or ConnectionPerThread) is PostgreSQL's: for the little SQL that differs."""
    conn = conn.connection if isinstance(conn, ConnectionPerThread) else conn
    return not isinstance(conn, sqlite3.Connection)


class transaction:
    """`with transaction(conn):` BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error. Inside a transaction
    already (a config change's: services.stores.config_log), a savepoint of it instead, so a store
    function that keeps its own writes atomic can run within a larger unit of work."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.nested = False

    def __enter__(self) -> sqlite3.Connection:
        conn = self.conn.connection if isinstance(self.conn, ConnectionPerThread) else self.conn
        self.nested = conn.in_transaction
        self.conn.execute("SAVEPOINT nested" if self.nested else "BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.nested:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        elif exc_type is None:
            self.conn.execute("RELEASE nested")
        else:
            self.conn.execute("ROLLBACK TO nested")
            self.conn.execute("RELEASE nested")


class snapshot:
    """`with snapshot(conn):` the reads inside see one state of the database: a deferred read
    transaction (in WAL mode it blocks no writer), so a view built from several queries is never
    half from before and half from after a commit of the projector's."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN DEFERRED")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT")  # nothing was written: there is nothing to roll back


class ConnectionPerThread:
    """`db.execute(...)` on the calling thread's own connection, opened on its first use.

    Reads in WAL mode never wait for a writer; writes from different threads take SQLite's
    write lock in turn (the busy timeout), as the projector's do. The connection of a thread
    that has ended (a thread pool may retire idle threads) is closed when another thread
    opens one; close() closes them all.
    """

    def __init__(self, url: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.url, self.busy_timeout_ms = url, busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: dict[threading.Thread, sqlite3.Connection] = {}

    @property
    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.url, self.busy_timeout_ms)
            with self._lock:
                ended = [t for t in self._opened if not t.is_alive()]
                retired = [self._opened.pop(t) for t in ended]
                self._opened[threading.current_thread()] = conn
            for old in retired:
                old.close()
        return conn

    def execute(self, sql: str, parameters=()) -> sqlite3.Cursor:
        return self.connection.execute(sql, parameters)

    def executemany(self, sql: str, parameters) -> sqlite3.Cursor:
        return self.connection.executemany(sql, parameters)

    def executescript(self, script: str) -> sqlite3.Cursor:
        return self.connection.executescript(script)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, {}
        for conn in opened.values():
            conn.close()
