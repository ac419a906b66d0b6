"""GET /api/scans/{id}/history: every command and event of one scan, in log order, with who caused it.

The scan is named by its id or by its run id (seed 003's integer). A page at a time: `limit`
(default 100, at most 1000) and the opaque `cursor` of the previous page; `type` (repeatable)
keeps only those event types. Only the caller's workspace's scans, as every read.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api.audit import queries
from api.web.auth import authenticate
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found
from api.web.openapi import param, query_params
from api.web.params import encode_cursor, page_cursor, page_limit, parse_int
from api.web.responses import json_response
from services.domain import contracts as c

LIMIT, MAX_LIMIT = 100, 1000
PARAMS = {"limit", "cursor", "type"}
SCAN_NOT_FOUND = "Scan not found"


def _types(request: Request) -> list[str]:
    types = request.query_params.getlist("type")
    unknown = [t for t in types if t not in c.MODELS]
    if unknown:
        raise ApiError(400, "Invalid query parameters", [{"path": ["type"], "message": f"Not an event type: {t}"}
                                                         for t in unknown])
    return types


def _history(db, workspace_id: str, raw_id: str, limit: int, after: list | None, types: list[str]):
    run = parse_int(raw_id)
    scan_id = queries.scan_id_of_run(db, workspace_id, run) if run is not None else raw_id
    if scan_id is None or not queries.has_history(db, workspace_id, scan_id):
        return None
    return scan_id, queries.page(db, workspace_id, scan_id, limit + 1, after, types)


async def scan_history(request: Request):
    """One scan's ledger: its commands, lifecycle, unit and chunk results, BYOC reports, aborts, resumes, reruns
    and violation status changes, each with its position on the log, time, actor and payload."""
    principal = await authenticate(request, "assets:read")
    extra = sorted(set(request.query_params) - PARAMS)
    if extra:
        raise ApiError(400, "Invalid query parameters", [{"path": [k], "message": "Unknown parameter"} for k in extra])
    limit, after, types = page_limit(request, LIMIT, MAX_LIMIT), page_cursor(request, 3), _types(request)
    found = await run_db(request, _history, request.state.db, principal.workspace_id, request.path_params["id"],
                         limit, after, types)
    if found is None:
        raise not_found(SCAN_NOT_FOUND)
    scan_id, rows = found
    page, more = rows[:limit], len(rows) > limit
    cursor = encode_cursor(*(page[-1][k] for k in queries.ORDER)) if more else None
    return json_response({"scan_id": scan_id, "items": [queries.item_view(r) for r in page],
                          "pagination": {"limit": limit, "next_cursor": cursor}})


query_params("GET", "/api/scans/{id}/history",
             param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, f"page size (default {LIMIT})"),
             param("cursor", {"type": "string"}, "the next_cursor of the page before"),
             param("type", {"enum": sorted(c.MODELS)}, "only events of these types", repeated=True))

routes = [Route("/api/scans/{id}/history", scan_history, methods=["GET"])]
