"""The database the tests' systems run on: SQLite (each system's file in its data dir, the default),
or PostgreSQL with `SCANLEDGER_TEST_DATABASE=postgresql` (CI runs the e2e and fault suites both ways).

PostgreSQL is a real server from the distribution's package (`initdb` + `pg_ctl`, as a user other
than root, in a temporary directory on a free port), started once per test session on first use;
every system, and every database a test replays into, gets a database of its own on it.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

KIND = os.environ.get("SCANLEDGER_TEST_DATABASE", "sqlite").strip().lower() or "sqlite"
if KIND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"SCANLEDGER_TEST_DATABASE={KIND!r}: give sqlite or postgresql")
POSTGRES = KIND == "postgresql"
USER = "scanledger"


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"no `{name}`: install PostgreSQL (Debian: apt-get install postgresql), as .ci/run does")
    return found


class PostgresServer:
    """A throwaway PostgreSQL cluster: initdb + pg_ctl in a temp dir, trust auth on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        from harness.system import free_port

        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")

    def start(self) -> PostgresServer:
        run = lambda *cmd: subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
        run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C",
            "--no-sync")
        run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "start", "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=500")
        return self

    def stop(self) -> None:
        subprocess.run([*self.as_user, _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       capture_output=True)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


_server: PostgresServer | None = None
_lock = threading.Lock()


def server() -> PostgresServer:
    global _server
    with _lock:
        if _server is None:
            _server = PostgresServer(Path(tempfile.mkdtemp(prefix="scanledger-pg-"))).start()
            atexit.register(_server.stop)
        return _server


def for_system() -> dict[str, str]:
    """The settings that give a new system its own database: none on SQLite (the data dir's file)."""
    return {"SCANLEDGER_DATABASE_URL": server().create()} if POSTGRES else {}


def scratch(tmp: Path, name: str = "scratch") -> str:
    """The URL of a new empty database (what a test replays into)."""
    if POSTGRES:
        return server().create()
    return f"sqlite:///{Path(tmp) / f'{name}-{uuid.uuid4().hex[:8]}.db'}"


def remove(url: str) -> None:
    """Drop a scratch database (an SQLite file and its WAL; a PostgreSQL database)."""
    if url.startswith("postgres"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(psycopg.Error), psycopg.connect(server().url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        return
    path = Path(url[len("sqlite:///"):])
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def connect_read(where):
    """A connection to read a system's database: a URL, or an SQLite file's path (read-only)."""
    url = str(where)
    if url.startswith("postgres"):
        from services.adapters.db import connect

        return connect(url)
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def rows(where, table: str) -> list[tuple]:
    """Every row of a table, in a stable order: how live and replayed read models compare."""
    conn = connect_read(where)
    try:
        return sorted((tuple(r) for r in conn.execute(f"SELECT * FROM {table}")), key=repr)
    finally:
        conn.close()


def stored_text(where) -> str:
    """Everything the database keeps, as text: an SQLite file's bytes (and its WAL), or every row of
    every table of a PostgreSQL database. What a test searches for a secret that must not be stored."""
    url = str(where)
    if not url.startswith("postgres"):
        path = Path(url[len("sqlite:///"):] if url.startswith("sqlite:///") else url)
        return "".join(p.read_bytes().decode("latin-1") for p in (path, path.with_name(path.name + "-wal"))
                       if p.exists())
    conn = connect_read(url)
    try:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        return "\n".join(repr(tuple(r)) for t in tables for r in conn.execute(f"SELECT * FROM {t}"))
    finally:
        with contextlib.suppress(Exception):
            conn.close()
