"""Compliance scans (seeds 001 and 002) and their violations; POST /api/scan/run is in api/scans/run_routes.py."""
from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.compliance import views
from api.scans import reads
from api.scans.as_of import as_of_param, scan_then
from api.scans.commands import send_command, wait_until
from api.web.auth import authenticate, read_as
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found
from api.web.openapi import param, query_params, request_body
from api.web.params import MAX_PAGE, QueryInt
from api.web.requests import json_body, parse
from api.web.responses import json_response
from services.adapters.db import snapshot
from services.domain import contracts as c
from services.domain.vocabulary import FINISHED, FindingStatus, Severity


async def get_scan(request: Request):
    """Status, results, score history and delta of a compliance scan (seed 001); with `as_of` (an ISO 8601
    time), as they stood then, computed from the log."""
    scan_id = request.path_params["id"]

    def lookup(db, principal):
        with snapshot(db):  # the scan and its score history as of one commit
            row, pending = reads.scan_or_pending(db, principal.workspace_id, scan_id)
            return (views.scan_view(db, row) if row is not None else None), pending

    if "as_of" not in request.query_params:  # the usual read: the caller checked and the scan read in one trip
        view, pending = await read_as(request, "assets:read", lookup)
    else:
        principal = await authenticate(request, "assets:read")
        moment = as_of_param(request)
        async with scan_then(request, scan_id, moment) as then:
            view, pending = await run_in_threadpool(lookup, then, principal) if then is not None else (None, None)
    if view is not None:
        return json_response(view)
    if pending is None:
        raise not_found("Scan not found")
    return json_response(views.pending_view(pending))


class ViolationQuery(BaseModel):
    page: QueryInt = Field(1, ge=1, le=MAX_PAGE)
    size: QueryInt = Field(50, ge=1, le=1000)
    rule_id: str | None = None
    status: FindingStatus | None = None
    severity: Severity | None = None


async def list_violations(request: Request):
    """The violations of a scan, paginated, filtered by rule, status and severity."""
    scan_id = request.path_params["id"]

    def page(db, principal):
        # one trip to a database thread (the caller's token checked first), one snapshot: the scan found,
        # then its page as of the same commit
        with snapshot(db):
            if reads.scan_or_pending(db, principal.workspace_id, scan_id) == (None, None):
                raise not_found("Scan not found")
            query = parse(ViolationQuery, dict(request.query_params))
            return reads.violations_page(db, scan_id, query.page, query.size, query.rule_id, query.status,
                                         query.severity)

    return json_response(await read_as(request, "assets:read", page))


@request_body("PATCH", "/api/violations/{id}")
class ViolationPatch(BaseModel):
    status: FindingStatus


def violation_view(row) -> dict:
    return reads.violation_view({k: row[k] for k in (
        "id", "scan_id", "rule_id", "rule_name", "rule_type", "severity", "account", "record_index", "record_key",
        "value", "window", "signature", "status", "detected_at", "record", "observed")})


async def patch_violation(request: Request):
    """Resolve, dismiss or reopen a violation; the score follows."""
    principal = await authenticate(request, "config:write")
    db = request.state.db
    vid = request.path_params["id"]
    patch = parse(ViolationPatch, await json_body(request))
    row = await run_db(request, reads.violation, db, principal.workspace_id, vid)
    if row is None:
        raise not_found("Violation not found")
    if not (row["finalized"] and row["scan_status"] in FINISHED):
        raise ApiError(409, "The scan has not finished yet")
    if row["status"] != patch.status:
        await send_command(request, c.CHANGE_VIOLATION_STATUS, row["scan_id"], principal.workspace_id,
                           c.ChangeViolationStatus(scan_id=row["scan_id"], violation_id=vid, severity=row["severity"],
                                                   status=patch.status, changed_by=principal.user).model_dump())
        await wait_until(request,
                         lambda: reads.violation(db, principal.workspace_id, vid)["status"] == patch.status,
                         request.state.settings.scan_sync_wait_s)
    return json_response({**violation_view(row), "status": patch.status})


AS_OF = param("as_of", {"type": "string", "format": "date-time"}, "the scan as it stood then (ISO 8601, with a zone)")
query_params("GET", "/api/scan/{id}", AS_OF)
query_params("GET", "/api/scan/{id}/violations", ViolationQuery)

routes = [
    Route("/api/scan/{id}", get_scan, methods=["GET"]),
    Route("/api/scan/{id}/violations", list_violations, methods=["GET"]),
    Route("/api/violations/{id}", patch_violation, methods=["PATCH"]),
]
