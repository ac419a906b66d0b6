"""Database work off the event loop: every SQLite call of a request runs on a database thread,
but a short read on SQLite, which runs on the loop itself when it proves short.

The event loop only awaits: a read model query, a config write waiting out the projector's
write transaction (the busy timeout), or the polls of a synchronous answer (wait_until)
hold up one of THREADS threads, never the loop, so /healthz and the other requests keep
answering. `db` (services.adapters.db.ConnectionPerThread) gives each thread its own
connection, so run one whole unit of work per call: a function that opens
`with transaction(db):` finishes it on the same thread and connection, atomically.

A hand-off to a thread and back costs the API more CPU than a small query (a page of
violations, a scan's row, the caller's token): `read()` runs a read-only unit on the loop, on a
connection of its own that never waits and cannot run long. It has no busy timeout (a lock it
would wait for is SQLITE_BUSY at once) and a progress handler that interrupts the unit's
statement once its statements have run INLINE_STEPS steps of SQLite's VM between them; either
way the unit is rolled back and run again on a database thread, as every unit ran before. The
budget is counted in steps, not seconds: on a loaded machine the process may lose its core in the
middle of a read, and a clock would then send short reads to a thread, doing them twice when the
CPU is scarcest. PostgreSQL's statements are network round trips:
its reads always go to a thread.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from starlette.requests import Request

from services.adapters.db import ConnectionPerThread, is_postgres

T = TypeVar("T")

THREADS = 4  # SQLite releases the GIL while it works; reads in WAL mode run side by side
# The most SQLite VM steps a unit runs on the loop before it is handed to a thread. A page of 50
# violations, a scan's row, the caller's token: hundreds to a few thousand steps. A step costs 15-300 ns
# here (a count over an index ~70 ns), so the loop spends at most ~1.5-6 ms on a read that turns out long
# (a large filtered count, a workspace with many runs) before a thread does it again.
INLINE_STEPS = 20_000
PROGRESS_STEPS = 1_000  # between the handler's calls


class DbWork:
    """A fixed set of database threads (each keeps its connection for the app's lifetime) and, on
    SQLite, the loop's own connection for short reads (`db_url`)."""

    def __init__(self, threads: int = THREADS, db_url: str | None = None):
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="api-db")
        self.inline = Inline(db_url) if db_url and not is_postgres(db_url) else None

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    async def read(self, fn: Callable[..., T], db) -> T:
        """`fn(db)`, a unit that only reads: on the loop if it is short (see the module's doc), else
        `fn(db)` on a database thread."""
        if self.inline is not None:
            done, result = self.inline.attempt(fn)
            if done:
                return result
        return await self.run(fn, db)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        if self.inline is not None:
            self.inline.db.close()


class Inline:
    """The event loop's connection: reads that never wait for a lock and stop at the budget."""

    def __init__(self, db_url: str):
        self.db = ConnectionPerThread(db_url, busy_timeout_ms=0)  # only the loop's thread uses it
        self.checks_left = 0

    def _over_budget(self) -> bool:
        self.checks_left -= 1
        return self.checks_left < 0  # true: SQLite interrupts the statement

    def attempt(self, fn: Callable[[ConnectionPerThread], T]) -> tuple[bool, T | None]:
        """(True, fn(db)), or (False, None) when SQLite was busy or the budget ran out (rolled back)."""
        try:
            conn = self.db.connection  # opened on first use (its PRAGMAs, too, never wait)
        except sqlite3.OperationalError:
            return False, None
        self.checks_left = INLINE_STEPS // PROGRESS_STEPS
        conn.set_progress_handler(self._over_budget, PROGRESS_STEPS)
        try:
            return True, fn(self.db)
        except sqlite3.OperationalError:  # interrupted, or a lock it would have waited for
            return False, None
        finally:
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:  # a snapshot left open by the interruption
                conn.rollback()


async def run_db(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` on a database thread: `await run_db(request, store.get_x, db, ws, id)`."""
    return await request.state.db_work.run(fn, *args, **kwargs)
