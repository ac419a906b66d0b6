"""Database work off the event loop: every SQLite call of a request runs on a database thread.

The event loop only awaits: a read model query, a config write waiting out the projector's
write transaction (the busy timeout), or the polls of a synchronous answer (wait_until)
hold up one of THREADS threads, never the loop, so /healthz and the other requests keep
answering. `db` (services.adapters.db.ConnectionPerThread) gives each thread its own
connection, so run one whole unit of work per call: a function that opens
`with transaction(db):` finishes it on the same thread and connection, atomically.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")

THREADS = 4  # SQLite releases the GIL while it works; reads in WAL mode run side by side


class DbWork:
    """A fixed set of database threads (each keeps its connection for the app's lifetime)."""

    def __init__(self, threads: int = THREADS):
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="api-db")

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    def close(self) -> None:
        self.executor.shutdown(wait=True)


async def run_db(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` on a database thread: `await run_db(request, store.get_x, db, ws, id)`."""
    return await request.state.db_work.run(fn, *args, **kwargs)
