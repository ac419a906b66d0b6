"""POST /api/scan/run: one path, two scan kinds, told apart by the body (seeds 000 and 002).

With no body or `{}` it starts a workspace monitor scan (seed 000, 202 with the executionId);
with a compliance body it starts a compliance scan (seed 002) and answers once its results
are final. Both triggers live here, so neither family's router imports the other's.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api.scans import reads
from api.scans.commands import start_scan, wait_until
from api.scans.snapshots import ScanRunBody, compliance_request, monitor_scan_request
from api.web.auth import Principal, authenticate, require
from api.web.db_work import run_db
from api.web.requests import idempotent, json_body, parse
from api.web.responses import json_response


async def run_monitor_scan(request: Request, principal: Principal):
    """Scan every enabled monitor of the caller's workspace (202 with the executionId)."""
    require(principal, "scan:trigger")
    scan_request = await run_db(request, monitor_scan_request, request.state.db, principal)
    await start_scan(request, scan_request)
    return json_response({"data": {"executionId": scan_request["scan_id"], "status": "running"}}, 202)


async def run_compliance_scan(request: Request, principal: Principal, body: dict):
    require(principal, "scan:trigger")
    db = request.state.db
    scan_request = await run_db(request, compliance_request, db, principal, parse(ScanRunBody, body))
    await start_scan(request, scan_request)
    scan_id = scan_request["scan_id"]
    # Seed 002 scans "run synchronously": answer once the results are final, or after the wait,
    # unless the client asks not to wait (RFC 7240 `Prefer: respond-async`).
    if "respond-async" not in request.headers.get("prefer", ""):
        await wait_until(request, lambda: reads.is_settled(reads.scan(db, principal.workspace_id, scan_id)),
                         request.state.settings.scan_sync_wait_s)
    return json_response({"scan_id": scan_id, "status": "running"})


async def run_scan(request: Request):
    """Trigger a scan: with no body or `{}` a workspace monitor scan (seed 000), else a compliance scan (seed 002)."""
    principal = await authenticate(request, "scan:trigger")  # before any Idempotency-Key replay

    async def handler():
        body = await json_body(request, allow_empty=True)
        if not body:
            return await run_monitor_scan(request, principal)
        return await run_compliance_scan(request, principal, body)

    return await idempotent(request, principal, handler)


routes = [
    Route("/api/scan/run", run_scan, methods=["POST"]),
]
