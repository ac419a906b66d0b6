"""Seed 004's scans: parallel sensitive-data scans over connectors, in the `{"status": "success", "data": …}` envelope.

POST /api/v1/scans/parallel writes a RunScan of the `sensitive` kind (services.domain.kinds.sensitive)
with a snapshot of each connector (its config as registered: references to secrets, never
secrets); the coordinator enumerates the connectors and sends the chunks, and the read side
(services/readmodels/sensitive_scans.py, api/sensitive/queries.py) shows progress, coverage,
workers and findings. Cancel is the lifecycle's abort: what was found stays. Each scan is also
a `scan` run of seed 003's Activity list, with an integer run id (api/operations/routes.py).
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.scans import reads
from api.scans.as_of import as_of_param, scan_then
from api.scans.commands import send_command, start_scan, wait_until
from api.sensitive import queries as sq
from api.web.auth import authenticate
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found, validation_error
from api.web.openapi import param, query_params, request_body
from api.web.params import encode_cursor, page_cursor, page_limit, time_param
from api.web.requests import idempotent, json_body
from api.web.responses import success
from services.adapters.db import snapshot
from services.domain import contracts as c
from services.domain.detectors import described
from services.domain.envelope import iso, new_id, utcnow
from services.domain.kinds import SENSITIVE
from services.domain.vocabulary import FINISHED
from services.stores import catalog_store, config_log, detector_store

SCAN_NOT_FOUND = "Scan not found"
DEFAULT_WORKERS = 10  # the tier limits of the seed: max_workers and max_files when not given
MAX_WORKERS = 64
MAX_FILES = 1_000_000
LIST_LIMIT, MAX_LIST_LIMIT = 20, 100
FINDINGS_LIMIT, MAX_FINDINGS_LIMIT = 100, 1000
FILES_LIMIT, MAX_FILES_LIMIT = 100, 1000
MAX_FINDINGS_PER_FILE = 1000  # per detector: a 20k-row column of emails is 1,000 findings and 20,000 occurrences

FileType = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^\.?[A-Za-z0-9]+(\.[A-Za-z0-9]+)*$")]
Prefix = Annotated[str, Field(max_length=1024, pattern=r"^[^\x00]*$")]


class ScanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    max_files: int = Field(MAX_FILES, ge=1, le=MAX_FILES)
    max_workers: int = Field(DEFAULT_WORKERS, ge=1, le=MAX_WORKERS)
    file_types: list[FileType] | None = Field(None, min_length=1, max_length=50)
    prefixes: list[Prefix] = Field([], max_length=100)
    llm_assist: bool = False
    timeout_minutes: int = Field(120, ge=1, le=7 * 24 * 60)
    coverage_target: float = Field(1.0, ge=0.0, le=1.0)
    coverage_strategy: Literal["best_effort", "strict"] = "best_effort"
    execution: Literal["in_cluster", "byoc"] = "in_cluster"  # byoc: GET …/deployment-config, scanledger scan-worker
    # findings reported per file and detector; the others are counted (the file's occurrences); null: every one
    max_findings_per_file: int | None = Field(MAX_FINDINGS_PER_FILE, ge=1, le=1_000_000)
    # the detectors to run, by name or family (GET /api/v1/detectors: the workspace's own too); null: all of them
    detectors: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(None, min_length=1,
                                                                                       max_length=100)


@request_body("POST", "/api/v1/scans/parallel")
class ParallelScanBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    connectors: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=100)
    type: Literal["full", "incremental"]
    options: ScanOptions = ScanOptions()


def _parse(data: dict) -> ParallelScanBody:
    try:
        body = ParallelScanBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if len(set(body.connectors)) != len(body.connectors):
        raise ApiError(400, "Invalid request body", [{"path": ["connectors"], "message": "Each connector once"}])
    return body


def _llm_available(settings) -> None:
    """llm_assist needs an endpoint configured (SCANLEDGER_LLM_*): else a 422 saying what to set."""
    problem = settings.llm_unconfigured()
    if problem:
        raise ApiError(422, problem, [{"path": ["options", "llm_assist"], "message": "No LLM endpoint configured"}])


def _check_detectors(names: list[str] | None, custom: list[dict]) -> None:
    known = {d["name"] for d in described()} | {d["family"] for d in described()} | {d["name"] for d in custom}
    unknown = [n for n in names or () if n not in known] + (["custom"] if "custom" in (names or ()) and not custom
                                                             else [])
    if unknown:
        raise ApiError(400, "Invalid request body", [{"path": ["options", "detectors"], "message": (
            f"unknown detector or family: {', '.join(unknown)} (GET /api/v1/detectors lists them)")}])


def _snapshots(db, workspace_id: str, ids: list[str], incremental: bool) -> tuple[dict, dict]:
    """The connectors', detectors' and allow-list's snapshots with their versions, and, for an incremental
    scan, each connector's watermark (sq.watermark): all as of one commit."""
    with snapshot(db):
        return _snapshots_now(db, workspace_id, ids, incremental)


def _snapshots_now(db, workspace_id: str, ids: list[str], incremental: bool) -> tuple[dict, dict]:
    rows = [catalog_store.get_connector(db, workspace_id, cid) for cid in ids]
    missing = [{"path": ["connectors", i], "message": f'Connector "{cid}" not found'}
               for i, (cid, row) in enumerate(zip(ids, rows, strict=True)) if row is None]
    if missing:
        raise ApiError(400, "Invalid request body", missing)
    out = {"connectors": [{"id": r["id"], "name": r["name"], "type": r["type"], "config": r["config"]} for r in rows],
           "baseline_scans": {},
           # the workspace's own detectors and allow-list as they are now: the scan runs with these
           **detector_store.snapshot(db, workspace_id),
           "config_versions": config_log.versions(db, [("connectors", cid) for cid in ids]
                                                  + detector_store.refs(db, workspace_id))}
    versions: dict[str, dict[str, str]] = {}
    for cid in ids if incremental else ():
        scan_id, found = sq.watermark(db, workspace_id, cid)
        if scan_id is not None:
            versions[cid], out["baseline_scans"][cid] = found, scan_id
    return out, versions


async def start_parallel_scan(request: Request):
    """Start a parallel sensitive-data scan over connectors of the caller's workspace (201, queued)."""
    principal = await authenticate(request, "scan:trigger")

    async def handler():
        body = _parse(await json_body(request))
        if body.options.llm_assist:
            _llm_available(request.state.settings)
        db = request.state.db
        snapshots, versions = await run_db(request, _snapshots, db, principal.workspace_id, body.connectors,
                                           body.type == "incremental")
        _check_detectors(body.options.detectors, snapshots["custom_detectors"])
        if versions:  # the watermark's versions by reference: a large connector's would not fit in a command
            snapshots["baseline_blob"] = await run_in_threadpool(request.state.blobs.put, orjson.dumps(versions))
        options = body.options.model_dump()
        scan_request = c.SensitiveScanRequest(
            scan_id=f"{SENSITIVE.scan_id_prefix}{new_id()}", kind=SENSITIVE.name, workspace_id=principal.workspace_id,
            requested_by=principal.user, requested_at=utcnow(), type=body.type, options=options,
            **snapshots).model_dump()
        # its scan id (the same on an Idempotency-Key's retry) and its run id in the Activity list (seed 003)
        await start_scan(request, scan_request)
        scan_id = scan_request["scan_id"]
        # briefly, until the coordinator has recorded it: then the scan history lists it too
        await wait_until(request, lambda: sq.scan_row(db, principal.workspace_id, scan_id) is not None, 2.0)
        return success({"scan_id": scan_id, "status": "queued", "connectors": body.connectors, "type": body.type,
                        "workers_requested": body.options.max_workers,
                        "created_at": scan_request["requested_at"]}, 201)

    return await idempotent(request, principal, handler)


def _scan_or_pending(db, workspace_id: str, scan_id: str):
    """(row, None), (None, pending request) or (None, None)."""
    def pending():
        found = reads.pending_request(db, workspace_id, scan_id)
        return found if found is not None and found["kind"] == "sensitive" else None
    return reads.projected_or_pending(lambda: sq.scan_row(db, workspace_id, scan_id), pending)


def _view(db, workspace_id: str, scan_id: str, now: datetime | None = None) -> dict | None:
    with snapshot(db):  # the scan, its file counts, findings and chunks as of one commit
        row, pending = _scan_or_pending(db, workspace_id, scan_id)
        if row is not None:
            return sq.scan_view(db, row, now)
        return sq.pending_view(pending["request"]) if pending is not None else None


async def _found(request: Request, fn, *args):
    result = await run_db(request, fn, *args)
    if result is None:
        raise not_found(SCAN_NOT_FOUND)
    return result


async def get_scan(request: Request):
    """A scan's status, progress, coverage block, workers and timestamps; with `as_of` (an ISO 8601 time),
    as they stood then, computed from the log."""
    principal = await authenticate(request, "assets:read")
    scan_id = request.path_params["id"]
    if (moment := as_of_param(request)) is None:
        return success(await _found(request, _view, request.state.db, principal.workspace_id, scan_id))
    async with scan_then(request, scan_id, moment) as then:
        view = await run_in_threadpool(_view, then, principal.workspace_id, scan_id, moment) if then else None
    if view is None:
        raise not_found(SCAN_NOT_FOUND)
    return success(view)


def _workers(db, workspace_id: str, scan_id: str) -> list | None:
    with snapshot(db):
        row, pending = _scan_or_pending(db, workspace_id, scan_id)
        if row is None:
            return [] if pending is not None else None
        return [sq.worker_view(k, row["ledger_status"]) for k in sq.chunks(db, scan_id)]


async def get_workers(request: Request):
    """Each parallel worker of a scan: its chunk of the enumerated files and its progress."""
    principal = await authenticate(request, "assets:read")
    return success(await _found(request, _workers, request.state.db, principal.workspace_id,
                                request.path_params["id"]))


async def cancel_scan(request: Request):
    """Cancel a queued or running scan: its workers stop between files; what they found stays (409 if finished)."""
    principal = await authenticate(request, "scan:trigger")
    db, scan_id, ws = request.state.db, request.path_params["id"], principal.workspace_id
    before = await _found(request, _view, db, ws, scan_id)
    if before["status"] not in ("queued", "running"):
        raise ApiError(409, f"The scan has already finished ({before['status']})")
    command = await send_command(request, c.ABORT_SCAN, scan_id, ws,
                                 {"scan_id": scan_id, "requested_by": principal.user})

    def settled():
        row = sq.scan_row(db, ws, scan_id)
        return row is not None and row["ledger_status"] in FINISHED

    await wait_until(request, settled, request.state.settings.scan_sync_wait_s)
    view = await run_db(request, _view, db, ws, scan_id)
    if view["status"] not in ("cancelled", "queued", "running"):
        raise ApiError(409, f"The scan has already finished ({view['status']})")
    return success({"scan_id": scan_id, "status": "cancelled",
                    "partial_results": {"files_processed": view["progress"]["files_processed"],
                                        "findings_count": view["progress"]["findings_count"]},
                    "cancelled_at": view.get("cancelled_at") or command["time"]})


Text = Annotated[str, Field(min_length=1, max_length=1000)]


class FindingsFilters(BaseModel):
    """GET …/findings: what to list (besides limit and cursor); any other parameter is a 400."""
    model_config = ConfigDict(extra="forbid")
    detector: Text | None = None
    connector: Text | None = None
    file: Text | None = Field(None, description="a prefix of the file's name")
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    llm_verdict: Literal["confirmed", "rejected", "not_reviewed", "none"] | None = None


class FilesFilters(BaseModel):
    """GET …/files: which file outcomes to list (besides limit and cursor); any other parameter is a 400."""
    model_config = ConfigDict(extra="forbid")
    status: Literal["scanned", "skipped", "failed"] | None = None
    reason: Text | None = None
    connector: Text | None = None


def _filters(request: Request, model: type[BaseModel]) -> dict:
    raw = {k: v for k, v in request.query_params.items() if k not in ("limit", "cursor")}
    try:
        return model.model_validate(raw).model_dump()
    except ValidationError as exc:
        raise validation_error(exc, "Invalid query parameters") from None


def _page(db, workspace_id: str, scan_id: str, fetch, *args):
    """None for no such scan; [] for one not taken up yet; else fetch(db, scan_id, *args)."""
    row, pending = _scan_or_pending(db, workspace_id, scan_id)
    if row is None and pending is None:
        return None
    return fetch(db, scan_id, *args) if row is not None else []


async def _keyset_listing(request: Request, fetch, filters: type[BaseModel], key: tuple[str, ...], view,
                          limits: tuple[int, int]):
    """A page of a scan's rows in the order of `key` (its index's), from an opaque cursor: the last key shown."""
    principal = await authenticate(request, "assets:read")
    limit, after = page_limit(request, *limits), page_cursor(request, len(key))
    rows = await _found(request, _page, request.state.db, principal.workspace_id, request.path_params["id"],
                        fetch, limit + 1, after, _filters(request, filters))
    page, more = rows[:limit], len(rows) > limit
    cursor = encode_cursor(*(page[-1][k] for k in key)) if more else None
    return success([view(r) for r in page], pagination={"limit": limit, "next_cursor": cursor})


async def list_findings(request: Request):
    """A scan's findings, a page at a time (masked samples only), in a stable order; filtered by detector,
    connector, file prefix, minimum confidence or LLM verdict."""
    return await _keyset_listing(request, sq.findings, FindingsFilters, ("connector_id", "file", "finding_id"),
                                 sq.finding_view, (FINDINGS_LIMIT, MAX_FINDINGS_LIMIT))


async def list_files(request: Request):
    """Each enumerated file's outcome: scanned, skipped or failed with the reason, its size and findings."""
    return await _keyset_listing(request, sq.files, FilesFilters, ("connector_id", "name"), sq.file_view,
                                 (FILES_LIMIT, MAX_FILES_LIMIT))


def _since(request: Request) -> str | None:
    moment = time_param(request, "since")
    return iso(moment) if moment is not None else None


def _list(db, workspace_id: str, query: dict) -> tuple[list, str | None]:
    limit = query["limit"]
    rows = sq.list_scans(db, workspace_id, connector=query["connector"], status=query["status"],
                         since=query["since"], limit=limit + 1, after=query["after"])
    page = rows[:limit]
    cursor = encode_cursor(page[-1]["created_at"], page[-1]["scan_id"]) if len(rows) > limit else None
    return [sq.scan_view(db, r) for r in page], cursor


async def list_scans(request: Request):
    """Scan history, newest first: filters connector, status, since; limit (default 20) and an opaque cursor."""
    principal = await authenticate(request, "assets:read")
    status = request.query_params.get("status")
    if status is not None and status not in sq.SEED_STATUSES:
        raise ApiError(400, "Invalid query parameters",
                       [{"path": ["status"], "message": f"One of {', '.join(sq.SEED_STATUSES)}"}])
    query = {"connector": request.query_params.get("connector"), "status": status, "since": _since(request),
             "limit": page_limit(request, LIST_LIMIT, MAX_LIST_LIMIT), "after": page_cursor(request, 2)}
    items, cursor = await run_db(request, _list, request.state.db, principal.workspace_id, query)
    return success(items, pagination={"limit": query["limit"], "next_cursor": cursor})



def _page_params(default: int, most: int) -> tuple[dict, dict]:
    return (param("limit", {"type": "integer", "minimum": 1, "maximum": most}, f"page size (default {default})"),
            param("cursor", {"type": "string"}, "the next_cursor of the page before"))


_SINCE = param("since", {"type": "string", "format": "date-time"}, "scans created at or after (ISO 8601, with a zone)")
query_params("GET", "/api/v1/scans", param("connector", {"type": "string"}),
             param("status", {"enum": list(sq.SEED_STATUSES)}), _SINCE, *_page_params(LIST_LIMIT, MAX_LIST_LIMIT))
query_params("GET", "/api/v1/scans/{id}", param("as_of", {"type": "string", "format": "date-time"},
                                                "the scan as it stood then (ISO 8601, with a zone)"))
query_params("GET", "/api/v1/scans/{id}/findings", FindingsFilters, *_page_params(FINDINGS_LIMIT, MAX_FINDINGS_LIMIT))
query_params("GET", "/api/v1/scans/{id}/files", FilesFilters, *_page_params(FILES_LIMIT, MAX_FILES_LIMIT))

routes = [
    Route("/api/v1/scans/parallel", start_parallel_scan, methods=["POST"]),
    Route("/api/v1/scans", list_scans, methods=["GET"]),
    Route("/api/v1/scans/{id}", get_scan, methods=["GET"]),
    Route("/api/v1/scans/{id}/workers", get_workers, methods=["GET"]),
    Route("/api/v1/scans/{id}/cancel", cancel_scan, methods=["POST"]),
    Route("/api/v1/scans/{id}/findings", list_findings, methods=["GET"]),
    Route("/api/v1/scans/{id}/files", list_files, methods=["GET"]),
]
