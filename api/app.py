"""The Starlette app: one router per API family, auth, the documented error bodies."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from api import audit, compliance, monitors, operations, scans, sensitive, tokens
from api.health import Progress, lag_totals, lags
from api.metrics import metrics
from api.web import changes
from api.web.db_work import DbWork
from api.web.docs_ui import routes as docs_routes
from api.web.errors import (
    ApiError,
    handle_api_error,
    handle_blob_unavailable,
    handle_http_exception,
    handle_unexpected,
)
from api.web.http_metrics import HttpMetrics
from api.web.limits import BodyLimit
from api.web.live_page import routes as live_routes
from api.web.openapi import openapi_document
from api.web.response_schemas import ANY_OBJ, STR, answers, obj
from api.web.responses import json_response
from services import stores
from services.adapters import deadletter, kafka_admin
from services.adapters.blobstore import BlobStore, BlobUnavailable, blob_store
from services.adapters.command_writer import CommandWriter
from services.adapters.db import ConnectionPerThread
from services.settings import Settings

HEALTH_TTL_S = 1.0

# One router per API family, side by side (no family imports another but operations, the Activity
# list, which reads them all; .importlinter checks it). A new family adds its router here.
# Integer ids take the `id64` convertor (api/web/params.py), so /api/assets/scan-status cannot be
# read as an asset id. Order still matters for one pair: monitors before compliance, so
# /api/scan/status/{executionId} wins over /api/scan/{id}/violations for /api/scan/status/violations.
ROUTERS = (scans.router, monitors.router, compliance.router, tokens.router, operations.router, sensitive.router,
           audit.router)


def _health(settings: Settings, progress: Progress) -> dict:
    broker = kafka_admin.broker_answers(settings)
    measured = _lags(settings) if broker else None  # one measure for the lag shown and the stall watch
    return {
        "broker": broker,
        "worker": broker and kafka_admin.group_has_members(settings, settings.streams_group),
        "projector": broker and kafka_admin.group_has_members(settings, settings.projector_group),
        "dead_letters": _dead_letters(settings) if broker else None,  # informative: never fails health
        # informative: records left per component and topic
        "lag": {name: {"total": sum(per_topic.values()), "topics": per_topic}
                for name, per_topic in lag_totals(settings, measured).items()} if measured else None,
        "stalled": _stalled(progress, measured) if broker else [],
    }


def _lags(settings: Settings) -> tuple | None:
    try:
        return lags(settings)
    except Exception:  # the broker went away meanwhile: _stalled measures again and says so
        return None


def _dead_letters(settings: Settings) -> int | None:
    try:
        return deadletter.count(settings)
    except Exception:
        return None


def _stalled(progress: Progress, measured: tuple | None = None) -> list[dict]:
    try:
        return progress.stalled(measured)
    except Exception as exc:  # the broker is down: 'broker' already says so
        return [{"component": "health", "lag": None, "error": str(exc)}]


@dataclass
class HealthCache:
    """The last /healthz answer's parts and when they were taken: a probe costs broker round trips."""
    at: float = float("-inf")
    parts: dict = field(default_factory=dict)


class State(TypedDict):
    """What the lifespan gives every request, as `request.state.<name>`."""
    settings: Settings
    db: ConnectionPerThread    # used on the database threads only (api/web/db_work.py)
    db_work: DbWork
    blobs: BlobStore
    progress: Progress
    commands: CommandWriter    # the API's one producer: commands, config changes, BYOC workers' reports as events
    health: HealthCache


async def healthz(request: Request):
    """200 only when every process is up and nothing with work left has stopped moving."""
    state, cache = request.state, request.state.health
    if time.monotonic() - cache.at > HEALTH_TTL_S:
        parts = await asyncio.to_thread(_health, state.settings, state.progress)
        cache.at, cache.parts = time.monotonic(), parts
    parts = cache.parts
    ok = all(parts[name] for name in ("broker", "worker", "projector")) and not parts["stalled"]
    return json_response({"status": "ok" if ok else "unavailable", **parts}, 200 if ok else 503)


answers("GET", "/openapi.json", obj({"openapi": STR, "info": ANY_OBJ, "components": ANY_OBJ, "paths": ANY_OBJ}))


async def openapi(request: Request):
    return json_response(openapi_document(request.app.routes))


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        db = ConnectionPerThread(settings.db_url)
        db_work = DbWork(db_url=settings.db_url)

        def init() -> None:
            stores.init(db, settings.admin_token)

        await db_work.run(init)
        commands = CommandWriter(settings)
        relaying = asyncio.create_task(changes.relay(db, db_work, commands, settings))
        try:
            yield State(settings=settings, db=db, db_work=db_work, blobs=blob_store(settings),
                        progress=Progress(settings), commands=commands, health=HealthCache())
        finally:
            relaying.cancel()
            commands.close(10)
            db_work.close()
            db.close()

    routes = [Route("/healthz", healthz), Route("/metrics", metrics), Route("/openapi.json", openapi), *docs_routes,
              *live_routes,
              *(route for router in ROUTERS for route in router.routes)]
    # Bodies are capped before any route reads them: JSON everywhere, the upload cap on /api/upload.
    # HTTP latency outermost, so a body refused by the limit is timed too.
    middleware = [Middleware(HttpMetrics, routes=routes), Middleware(BodyLimit, default=settings.max_body_bytes,
                             per_path={"/api/upload": settings.max_upload_bytes})]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware, exception_handlers={
        ApiError: handle_api_error, HTTPException: handle_http_exception, BlobUnavailable: handle_blob_unavailable,
        Exception: handle_unexpected})  # last resort: a 500 with the error body, never a traceback
    # Set when the API is told to stop (cli/main.py): open event streams end, since uvicorn waits for
    # every response in flight before it stops.
    app.state.stopping = threading.Event()
    return app
