"""GET /api/operations/{id}/events: one run's progress and status as server-sent events, until it ends.

The stream polls the Activity read model (one indexed row) every POLL_S and sends the run, as GET
/api/operations lists it, each time it changed: first as it is, last in its final state, then the
stream closes. It is the caller's workspace's run or a 404 before anything is streamed. A client
that goes away cancels the loop (Starlette's StreamingResponse listens for the disconnect); an API
told to stop (SIGTERM: `app.state.stopping`, set by the command line's server) ends it within POLL_S,
so a stream never holds up the shutdown."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from api.operations import queries as oq
from api.operations import views
from api.operations.routes import Run, find_run
from api.web.auth import Principal, authenticate
from api.web.db_work import run_db
from api.web.openapi import event_stream
from services.domain.vocabulary import FINISHED

PATH = "/api/operations/{id}/events"
POLL_S = 0.5
RUN, DELETED = "run", "deleted"


def frame(event: str, data: dict) -> bytes:
    """One server-sent event: its name and its JSON data on one line."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _changes(request: Request, principal: Principal, run: Run) -> AsyncIterator[bytes]:
    db, stopping = request.state.db, request.app.state.stopping
    sent, seen = None, run.row is not None
    while not stopping.is_set():
        row = await run_db(request, oq.operation, db, principal.workspace_id, run.operation_id)
        if row is None and seen:  # deleted from the Activity list meanwhile
            yield frame(DELETED, {"id": run.operation_id})
            return
        view = views.item_view(row) if row is not None else run.view()  # not projected yet: queued
        if view != sent:
            yield frame(RUN, view)
            sent = view
        if row is not None and row["shown_status"] in FINISHED:
            return
        seen = seen or row is not None
        await asyncio.sleep(POLL_S)


async def run_events(request: Request):
    """A run's progress as `text/event-stream`: `run` events (the run as listed), until it has finished."""
    principal = await authenticate(request, "assets:read")
    run = await find_run(request, principal)
    return StreamingResponse(_changes(request, principal, run), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


event_stream("GET", PATH)
routes = [Route(PATH, run_events, methods=["GET"])]
