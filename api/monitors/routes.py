"""Data-quality monitor scans (seed 000): execution status, per-asset scan status (trigger: api/scans/run_routes.py)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api.monitors import views
from api.scans import reads
from api.web.auth import authenticate
from api.web.db_work import run_db
from api.web.errors import not_found
from api.web.responses import json_response
from services.adapters.db import snapshot
from services.stores import catalog_store


async def scan_status(request: Request):
    """The progress of a scan triggered by POST /api/scan/run: running, finished or failed."""
    principal = await authenticate(request, "scan:trigger")
    db = request.state.db
    execution_id = request.path_params["executionId"]
    row, pending = await run_db(request, reads.scan_or_pending, db, principal.workspace_id, execution_id)
    if row is not None:
        return json_response({"data": views.execution_view(row)})
    if pending is None:
        raise not_found("Scan execution not found")
    return json_response({"data": views.pending_execution_view(pending)})


async def assets_scan_status(request: Request):
    """The current and last completed monitor run of every asset, for the Monitor Dashboard."""
    principal = await authenticate(request, "assets:read")
    db = request.state.db

    def status():
        # which run is current and what its unit says, read in one snapshot: between two reads the
        # projector may finish the run, and the board would show a current run that has failed
        with snapshot(db):
            return views.assets_status(db, catalog_store.list_assets(db, principal.workspace_id))

    return json_response({"data": await run_db(request, status)})


routes = [
    Route("/api/scan/status/{executionId}", scan_status, methods=["GET"]),
    Route("/api/assets/scan-status", assets_scan_status, methods=["GET"]),
]
