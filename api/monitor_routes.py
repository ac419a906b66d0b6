"""Data-quality monitor scans (seed 000): execution status, per-asset scan status (the trigger: scan_run_routes)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api import monitor_views, queries
from api.auth import authenticate
from api.errors import not_found
from api.responses import json_response
from services.stores import catalog_store


async def scan_status(request: Request):
    """The progress of a scan triggered by POST /api/scan/run: running, finished or failed."""
    principal = authenticate(request, "scan:trigger")
    db = request.app.state.db
    execution_id = request.path_params["executionId"]
    row, pending = queries.scan_or_pending(db, principal.workspace_id, execution_id)
    if row is not None:
        return json_response({"data": monitor_views.execution_view(row)})
    if pending is None:
        raise not_found("Scan execution not found")
    return json_response({"data": monitor_views.pending_execution_view(pending)})


async def assets_scan_status(request: Request):
    """The current and last completed monitor run of every asset, for the Monitor Dashboard."""
    principal = authenticate(request, "assets:read")
    db = request.app.state.db
    assets = catalog_store.list_assets(db, principal.workspace_id)
    return json_response({"data": monitor_views.assets_status(db, assets)})


routes = [
    Route("/api/scan/status/{executionId}", scan_status, methods=["GET"]),
    Route("/api/assets/scan-status", assets_scan_status, methods=["GET"]),
]
