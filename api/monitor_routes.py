"""Data-quality monitor scans (seed 000): execution status, per-asset scan status (the trigger: scan_run_routes)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api import monitor_views, queries
from api.auth import authenticate
from api.db_work import run_db
from api.errors import not_found
from api.responses import json_response
from services.stores import catalog_store


async def scan_status(request: Request):
    """The progress of a scan triggered by POST /api/scan/run: running, finished or failed."""
    principal = await authenticate(request, "scan:trigger")
    db = request.app.state.db
    execution_id = request.path_params["executionId"]
    row, pending = await run_db(request, queries.scan_or_pending, db, principal.workspace_id, execution_id)
    if row is not None:
        return json_response({"data": monitor_views.execution_view(row)})
    if pending is None:
        raise not_found("Scan execution not found")
    return json_response({"data": monitor_views.pending_execution_view(pending)})


async def assets_scan_status(request: Request):
    """The current and last completed monitor run of every asset, for the Monitor Dashboard."""
    principal = await authenticate(request, "assets:read")
    db = request.app.state.db

    def status():
        return monitor_views.assets_status(db, catalog_store.list_assets(db, principal.workspace_id))

    return json_response({"data": await run_db(request, status)})


routes = [
    Route("/api/scan/status/{executionId}", scan_status, methods=["GET"]),
    Route("/api/assets/scan-status", assets_scan_status, methods=["GET"]),
]
