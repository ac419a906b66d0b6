"""The schema version (services.stores.migrations) on real databases, SQLite and PostgreSQL alike
(harness/databases.py starts a real PostgreSQL server, whatever database the rest of the suite runs on):
a database of an earlier shape, built here by raw SQL as an older scanledger left it, reaches exactly a
fresh database's columns, indexes and version; the steps apply once however many processes start at
once; and a database newer than the code stops a process with one line and exit 2, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness import databases
from harness.system import ROOT, free_port
from services import stores
from services.adapters.db import connect, on_postgres
from services.stores import migrations

KINDS = ["sqlite", "postgresql"]

# The tables whose shape changed after they shipped, as they were before (raw SQL, no store's SCHEMA),
# with the index a later one replaced: what a database an older scanledger made still has.
OLD_SHAPE = """
CREATE TABLE IF NOT EXISTS datastores (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    path TEXT NOT NULL, resolved_path TEXT NOT NULL, created_at TEXT NOT NULL, deleted_at TEXT);
CREATE TABLE IF NOT EXISTS chunk_leases (
    unit_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, attempt INTEGER NOT NULL, lease_id TEXT NOT NULL,
    worker_id TEXT NOT NULL, expires_at REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS rm_violations (
    violation_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, rule_id TEXT NOT NULL, rule_name TEXT,
    rule_type TEXT, severity TEXT NOT NULL, account TEXT, record_index INTEGER, record_key TEXT NOT NULL,
    value TEXT, "window" TEXT, signature TEXT NOT NULL, detected_at TEXT NOT NULL, container_id INTEGER,
    observed TEXT);
CREATE INDEX IF NOT EXISTS rm_violations_scan ON rm_violations (scan_id, rule_id, record_key);
CREATE TABLE IF NOT EXISTS rm_sensitive_files (
    scan_id TEXT NOT NULL, connector_id TEXT NOT NULL, name TEXT NOT NULL, unit_id TEXT NOT NULL,
    idx INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, size INTEGER NOT NULL, version TEXT NOT NULL,
    findings INTEGER NOT NULL, at TEXT NOT NULL, PRIMARY KEY (scan_id, connector_id, name));
CREATE TABLE IF NOT EXISTS rm_sensitive_findings (
    scan_id TEXT NOT NULL, finding_id TEXT NOT NULL, connector_id TEXT NOT NULL, file TEXT NOT NULL,
    row INTEGER, col TEXT, line INTEGER, start INTEGER NOT NULL, end_ INTEGER NOT NULL, detector TEXT NOT NULL,
    family TEXT NOT NULL, confidence REAL NOT NULL, masked TEXT NOT NULL, found_at TEXT NOT NULL,
    PRIMARY KEY (scan_id, finding_id));
"""


def empty(kind: str, tmp_path: Path) -> str:
    return databases.server().create() if kind == "postgresql" else f"sqlite:///{tmp_path / 'db.sqlite'}"


@pytest.fixture(params=KINDS)
def url(request, tmp_path):
    made = empty(request.param, tmp_path)
    yield made
    databases.remove(made)


def old_database(url: str):
    """A database as a scanledger from before the version table and these columns left it, with rows."""
    conn = connect(url)
    for statement in OLD_SHAPE.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO datastores (workspace_id, name, type, path, resolved_path, created_at)"
                 " VALUES ('default', 'Lake', 'local_dir', 'lake', '/x/lake', 'then')")
    conn.execute("INSERT INTO chunk_leases (unit_id, scan_id, attempt, lease_id, worker_id, expires_at)"
                 " VALUES ('u1', 's1', 1, 'l1', 'w1', 5.0)")
    return conn


def shape(conn) -> dict:
    """Every table's columns in their order (name, type, and on SQLite nullability and default) and every
    index's name. Not the column's number: on PostgreSQL an added column comes after the hidden rowid
    (services.adapters.pg), which no row shows, so the visible columns' order is the same."""
    if on_postgres(conn):
        tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables"
                                             " WHERE table_schema = current_schema() ORDER BY table_name")]
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
    else:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                             " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return {"columns": {t: [tuple(r)[1:] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables},
            "indexes": indexes}


def steps_recorded(conn) -> list[int]:
    return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


@pytest.mark.parametrize("kind", KINDS)
def test_an_old_database_reaches_exactly_the_fresh_schema_and_version(kind, tmp_path):
    fresh_url, old_url = empty(kind, tmp_path / "fresh"), empty(kind, tmp_path / "old")
    fresh = connect(fresh_url)
    stores.init(fresh)
    old = old_database(old_url)
    assert migrations.version(old) == 0 and "rm_violations_scan" in shape(old)["indexes"]
    stores.init(old)
    try:
        assert shape(old) == shape(fresh)
        assert migrations.version(old) == migrations.version(fresh) == migrations.LATEST
        assert steps_recorded(old) == steps_recorded(fresh) == list(range(1, migrations.LATEST + 1))
        assert "rm_violations_scan" not in shape(old)["indexes"]
        # the rows kept, the new columns at their defaults (NULL: what a row from before them carries)
        store = old.execute("SELECT name, dialect FROM datastores").fetchone()
        assert (store["name"], store["dialect"]) == ("Lake", None)
        lease = old.execute("SELECT unit_id, chain_seq, chain_prev FROM chunk_leases").fetchone()
        assert tuple(lease) == ("u1", 0, "")
        # the config log's triggers carry the added column: a datastore's change logs its dialect
        old.execute("UPDATE datastores SET dialect = '{}' WHERE name = 'Lake'")
        image = old.execute("SELECT image FROM config_outbox WHERE tbl = 'datastores' ORDER BY seq DESC").fetchone()
        assert '"dialect"' in image[0]
    finally:
        fresh.close()
        old.close()
        databases.remove(fresh_url)
        databases.remove(old_url)


def test_running_the_migrations_again_applies_nothing(url):
    conn = connect(url)
    assert [s.version for s in migrations.migrate(conn)] == list(range(1, migrations.LATEST + 1))
    before = conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert migrations.migrate(conn) == []
    stores.init(conn)
    after = conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert migrations.pending(conn) == []
    conn.close()


def test_a_table_or_index_added_to_a_schema_needs_no_step(url):
    """A database at the latest version that lacks a table and an index its code's schemas have (as when
    a release adds a table to a store's SCHEMA) gets them at the next start, the version unchanged."""
    conn = connect(url)
    stores.init(conn)
    want = shape(conn)
    conn.execute("DROP TABLE rm_sensitive_late_findings")
    conn.execute("DROP INDEX rm_violations_page")
    assert shape(conn) != want
    assert migrations.migrate(conn) == []
    assert shape(conn) == want and migrations.version(conn) == migrations.LATEST
    conn.close()


def test_threads_starting_at_once_apply_each_step_once(url):
    """Eight connections migrate one empty database at the same moment: every step is applied by exactly
    one of them, none fails, and the database ends at the latest version."""
    count = 8
    conns = [connect(url) for _ in range(count)]
    go = threading.Barrier(count)
    ran: list[list[int]] = [[] for _ in range(count)]
    errors: list[BaseException] = []

    def start(i: int) -> None:
        go.wait()
        try:
            ran[i] = [s.version for s in migrations.migrate(conns[i])]
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for mine in ran for v in mine) == list(range(1, migrations.LATEST + 1))
    assert steps_recorded(conns[0]) == list(range(1, migrations.LATEST + 1))
    for conn in conns:
        conn.close()


def process_env(url: str, data_dir: Path) -> dict[str, str]:
    """A process's settings for this database: its URL (PostgreSQL), or the data dir its file is in."""
    base = {k: v for k, v in os.environ.items() if k != "SCANLEDGER_DATABASE_URL"}
    env = {**base, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
           "SCANLEDGER_DATA_DIR": str(data_dir)}
    if url.startswith("postgres"):
        env["SCANLEDGER_DATABASE_URL"] = url
    return env


def system_database(kind: str, tmp_path: Path) -> tuple[str, Path]:
    """A database where a process started with process_env finds it: the data dir's file on SQLite."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = databases.server().create() if kind == "postgresql" else f"sqlite:///{data_dir / 'scanledger.db'}"
    return url, data_dir


@pytest.mark.parametrize("kind", KINDS)
def test_processes_starting_at_once_apply_each_step_once(kind, tmp_path):
    url, data_dir = system_database(kind, tmp_path)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = process_env(url, data_dir)
    started = [subprocess.Popen([sys.executable, "-m", "cli.main", "db", "upgrade"], env=env, cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outcomes = [(p.wait(), *p.communicate()) for p in started]
    assert [rc for rc, _, _ in outcomes] == [0, 0, 0], outcomes
    assert all(out.startswith(f"schema version {migrations.LATEST} (was ") for _, out, _ in outcomes), outcomes
    conn = connect(url)
    assert steps_recorded(conn) == list(range(1, migrations.LATEST + 1))
    conn.close()
    databases.remove(url)


@pytest.mark.parametrize("command", [["projector"], ["api"], ["up"], ["db", "status"]])
@pytest.mark.parametrize("kind", KINDS)
def test_a_database_newer_than_the_code_stops_a_process_with_one_line(kind, command, tmp_path):
    url, data_dir = system_database(kind, tmp_path)
    conn = connect(url)
    stores.init(conn)
    newer = migrations.LATEST + 2
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'a later step', 'later')",
                 (newer,))
    before = conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    # a broker address nobody answers at: `up` must stop before it would start a local broker or use one
    env = {**process_env(url, data_dir), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
           "SCANLEDGER_PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "cli.main", *command], env=env, cwd=cwd, capture_output=True,
                          text=True)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    if command != ["db", "status"]:  # (the status lists the steps on stdout before the line)
        assert done.stdout == "", done.stdout
    assert done.stderr.splitlines() == [
        f"scanledger: the database at SCANLEDGER_DATABASE_URL is at schema version {newer}, this scanledger knows"
        f" up to {migrations.LATEST}: upgrade scanledger (a database is never migrated down)"]
    assert "Traceback" not in done.stdout
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == before  # nothing written
    conn.close()
    databases.remove(url)
