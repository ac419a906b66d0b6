"""`?as_of=`: a scan as the API would have shown it at an instant, computed from the log (services.audit.as_of)
in read models of its own, never from the live ones. Shared by GET /api/scan/{id} and GET /api/v1/scans/{id}."""
from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.web.errors import ApiError
from api.web.params import time_param
from services.audit.as_of import scan_as_of

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_of_param(request: Request) -> datetime | None:
    """The `as_of` query parameter: an ISO 8601 time with its zone, from 1970 on (a 400 otherwise: the log's
    timestamps are milliseconds since then, and Kafka reads -1 and -2 as "latest" and "earliest"); None
    without one."""
    moment = time_param(request, "as_of")
    if moment is not None and moment < EPOCH:
        raise ApiError(400, "Invalid query parameters", [{"path": ["as_of"], "message": "A time from 1970 on"}])
    return moment


@asynccontextmanager
async def scan_then(request: Request, scan_id: str, moment: datetime) -> AsyncIterator[sqlite3.Connection | None]:
    """Read models holding the scan as of `moment` (None: not requested by then), for the request's views.
    The log is read on a worker thread, not a database thread: it is Kafka work, not SQLite's."""
    conn = await run_in_threadpool(scan_as_of, request.state.settings, scan_id, int(moment.timestamp() * 1000))
    try:
        yield conn
    finally:
        if conn is not None:
            conn.close()
