"""DbWork.read: a read-only unit runs on the loop's own SQLite connection when it is short, and is handed
to a database thread, whole, when SQLite would wait for a lock or the unit runs past its budget."""
from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from api.web import db_work
from api.web.db_work import DbWork
from services.adapters.db import ConnectionPerThread, connect, snapshot

# Far more SQLite VM steps than the budget (a recursive count to a million).
LONG = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) SELECT MAX(i) FROM n"


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    conn = connect(url)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1), (2)")
    conn.close()
    return url


def read_where(statement: str):
    def unit(db) -> tuple[str, int]:
        with snapshot(db):  # a unit's snapshot left open by an interruption must not stay open
            return threading.current_thread().name, db.execute(statement).fetchone()[0]
    return unit


@pytest.fixture
def work(url):
    work = DbWork(db_url=url)
    yield work
    work.close()


def run(work: DbWork, unit, db):
    return asyncio.run(work.read(unit, db))


def test_a_short_read_runs_on_the_loop(url, work):
    db = ConnectionPerThread(url)
    thread, total = run(work, read_where("SELECT SUM(x) FROM t"), db)
    assert (thread, total) == (threading.current_thread().name, 3)


def test_a_read_past_its_budget_is_run_again_on_a_database_thread(url, work, monkeypatch):
    monkeypatch.setattr(db_work, "INLINE_STEPS", 0)
    db = ConnectionPerThread(url)
    inline = work.inline.db.connection
    thread, biggest = run(work, read_where(LONG), db)
    assert thread.startswith("api-db") and biggest == 1_000_000
    assert not inline.in_transaction  # rolled back: the loop's connection holds no snapshot
    assert inline.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2  # and its handler is gone


def test_a_read_while_the_database_is_locked_goes_to_a_database_thread(url, work):
    db = ConnectionPerThread(url)
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # nobody else may even read: the loop's connection is refused at once
    holder.execute("INSERT INTO t VALUES (3)")

    def release() -> None:  # an exclusive locking mode keeps the lock until its connection closes
        holder.execute("COMMIT")
        holder.close()

    releasing = threading.Timer(0.2, release)
    releasing.start()  # the thread's connection waits it out (its busy timeout)
    try:
        thread, total = run(work, read_where("SELECT SUM(x) FROM t"), db)
    finally:
        releasing.join()
    assert thread.startswith("api-db") and total == 6


def test_a_read_refused_busy_on_the_loop_is_run_again_on_a_database_thread(url, work):
    db, loop = ConnectionPerThread(url), threading.current_thread()

    def unit(db):
        with snapshot(db):
            total = db.execute("SELECT SUM(x) FROM t").fetchone()[0]
            if threading.current_thread() is loop:  # what SQLite raises without a busy timeout
                raise sqlite3.OperationalError("database is locked")
            return total

    assert run(work, unit, db) == 3
    assert not work.inline.db.connection.in_transaction


def test_what_the_unit_raises_is_raised(url, work):
    db = ConnectionPerThread(url)

    def refuse(db):
        raise LookupError("not found")

    with pytest.raises(LookupError):
        run(work, refuse, db)


def test_postgresql_reads_always_go_to_a_thread():
    work = DbWork(db_url="postgresql://user@localhost:5432/x")
    try:
        assert work.inline is None
    finally:
        work.close()
