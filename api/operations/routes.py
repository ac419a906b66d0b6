"""Run operations (seed 003): list, inspect, abort, resume, rerun and delete any run."""
from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.operations import queries as oq
from api.operations import views
from api.scans import reads
from api.scans.commands import send_command, start_scan, wait_until
from api.scans.snapshots import rerun_request
from api.sensitive import queries as sq
from api.web.auth import Principal, authenticate, read_as
from api.web.db_work import run_db
from api.web.errors import ApiError, details_from, not_found
from api.web.openapi import param, query_params
from api.web.params import path_id
from api.web.responses import json_response
from services.domain import contracts as c
from services.domain.envelope import utcnow
from services.domain.kinds import KINDS, SENSITIVE
from services.domain.vocabulary import COMPLETED, FINISHED, IN_FLIGHT

RUN_NOT_FOUND = "Run not found"


def _query(request: Request) -> oq.OperationsQuery:
    params = request.query_params
    raw = {k: (params.getlist(k) if k in oq.LIST_FIELDS else params[k]) for k in params}
    try:
        return oq.OperationsQuery.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(422, "Invalid query parameters", details_from(exc)) from None


async def list_operations(request: Request):
    """Every run of the workspace, filtered, sorted and paginated: those no worker has taken up too."""
    def page(db, principal):  # on the database thread, after the caller's token: a 401 before a 422
        q = _query(request)
        rows, total = oq.operations_page(db, principal.workspace_id, q)
        return {"items": [views.list_item_view(r) for r in rows], "total": total, "page": q.page, "size": q.size,
                "pages": oq.pages(total, q.size)}

    return json_response(await read_as(request, "assets:read", page))


def _operation_id(request: Request) -> int:
    return path_id(request, "id", ApiError(400, "Invalid run id", [{"path": ["id"], "message": "Expected an integer"}]),
                   not_found(RUN_NOT_FOUND))


async def find_run(request: Request, principal: Principal) -> Run:
    """The run named by the path's id (400 if it is not an integer, 404 if there is none)."""
    db, operation_id = request.state.db, _operation_id(request)
    row, pending = await run_db(request, reads.projected_or_pending,
                                lambda: oq.operation(db, principal.workspace_id, operation_id),
                                lambda: reads.pending_operation(db, principal.workspace_id, operation_id))
    if row is None and pending is None:  # unknown, another workspace's, or deleted
        raise not_found(RUN_NOT_FOUND)
    return Run(operation_id, row, pending["request"] if pending is not None else None)


class Run:
    """A run by its integer id: projected (row) or on the ledger, not yet taken up (pending request)."""

    def __init__(self, operation_id: int, row, pending: dict | None):
        self.operation_id, self.row, self.pending = operation_id, row, pending
        self.scan_id = self.row["scan_id"] if self.row else self.pending["scan_id"]
        self.kind = self.row["kind"] if self.row else self.pending["kind"]
        self.status = self.row["status"] if self.row else "queued"

    def view(self) -> dict:
        return views.item_view(self.row) if self.row else views.pending_item_view(self.pending)

    def request(self) -> dict:
        """The scan request the run was started with (its snapshot)."""
        return orjson.loads(self.row["request"]) if self.row else self.pending


async def get_operation(request: Request):
    """One run in full: the configuration it used, its summary metrics, who triggered it."""
    principal = await authenticate(request, "assets:read")
    run = await find_run(request, principal)
    if run.row is None:
        return json_response(run.view())
    db = request.state.db
    rerun_of = await run_db(request, oq.operation_id_of, db, run.row["rerun_of"]) if run.row["rerun_of"] else None
    scan = await run_db(request, _sensitive_view, db, run.row) if KINDS[run.kind] is SENSITIVE else None
    return json_response(views.detail_view(run.row, rerun_of, scan))


def _sensitive_view(db, row) -> dict | None:
    """A sensitive-data scan's view of GET /api/v1/scans/:id: its counts are the run's summary."""
    found = sq.scan_row(db, row["workspace_id"], row["scan_id"])
    return sq.scan_view(db, found) if found is not None else None


async def list_containers(request: Request):
    """The per-container breakdown of a run."""
    principal = await authenticate(request, "assets:read")
    run = await find_run(request, principal)
    units = await run_db(request, oq.units, request.state.db, run.scan_id) if run.row else []
    return json_response({"items": [views.container_view(u, run.status) for u in units], "total": len(units)})


async def _command(request: Request, principal: Principal, type_: str, run: Run, **extra) -> dict:
    model = c.ResumeScan if type_ == c.RESUME_SCAN else c.ScanCommand
    return await send_command(request, type_, run.scan_id, principal.workspace_id,
                              model(scan_id=run.scan_id, requested_by=principal.user, **extra).model_dump())


async def _settled_view(request: Request, principal: Principal, run: Run, done) -> Response:
    """Answer once the projector shows the change (or after the sync wait), with the run as it is."""
    db = request.state.db

    def current():
        return oq.operation(db, principal.workspace_id, run.operation_id)

    await wait_until(request, lambda: (row := current()) is not None and done(row),
                     request.state.settings.scan_sync_wait_s)
    row = await run_db(request, current)
    return json_response(views.item_view(row) if row else run.view())


async def abort_operation(request: Request):
    """Stop a run in flight; what it found so far is kept."""
    principal = await authenticate(request, "scan:trigger")
    run = await find_run(request, principal)
    if run.status in FINISHED:
        raise ApiError(409, f"The run has already finished ({views.RESULT[run.status]})")
    await _command(request, principal, c.ABORT_SCAN, run)
    return await _settled_view(request, principal, run, lambda row: row["shown_status"] in FINISHED)


async def resume_operation(request: Request):
    """Continue an aborted or failed run with only its unprocessed containers."""
    principal = await authenticate(request, "scan:trigger")
    run = await find_run(request, principal)
    force = request.query_params.get("force_abort", "false").lower()
    if force not in ("true", "false", "1", "0"):
        raise ApiError(422, "Invalid query parameters", [{"path": ["force_abort"], "message": "Expected a boolean"}])
    kind = KINDS[run.kind]
    if not kind.resumable:
        raise ApiError(409, f"A {kind.label} cannot be resumed; rerun it")
    if run.status == COMPLETED:
        raise ApiError(409, "The run completed; there is nothing to resume")
    if reason := kind.resume_refused(run.request(), utcnow()):  # sensitive: its timeout passed
        raise ApiError(409, f"The run cannot be resumed: {reason}")
    if run.status in IN_FLIGHT:
        if force not in ("true", "1"):
            raise ApiError(409, "The run is still in progress; abort it first or pass force_abort=true")
        await _command(request, principal, c.ABORT_SCAN, run)
    elif run.row and run.row["units_total"] == 0:
        raise ApiError(409, "The run never started, so there is nothing to resume; rerun it")
    before = run.row["started_at"] if run.row else None
    reported = await run_db(request, oq.completed_units, request.state.db, run.scan_id)
    command = await _command(request, principal, c.RESUME_SCAN, run, reported_units=reported)
    # Seed 003: the answer is the new attempt, running, with its new dispatch (start) time, even
    # when it has already finished by now. scan.resumed sets that start time; until the projector
    # shows it (it may lag), the dispatch time is the command's.
    db = request.state.db

    def resumed():
        row = oq.operation(db, principal.workspace_id, run.operation_id)
        return row if row is not None and row["started_at"] != before else None

    await wait_until(request, lambda: resumed() is not None, request.state.settings.scan_sync_wait_s)
    row = await run_db(request, resumed)
    if row is None:
        return json_response({**views.as_dispatched(run.view()), "start_time": command["time"]})
    return json_response(views.as_dispatched(views.item_view(row)))


async def rerun_operation(request: Request):
    """A new run from scratch with the recorded configuration of a finished one."""
    principal = await authenticate(request, "scan:trigger")
    run = await find_run(request, principal)
    if run.status not in FINISHED:
        raise ApiError(409, "The run is still in progress; rerun it once it has finished")
    db = request.state.db
    scan_request = rerun_request(principal, run.row["request"], run.scan_id)
    operation_id = await start_scan(request, scan_request)
    # Seed 003: the new run, queued or running, never its result even if it is already there.
    # Answer once it has started (or after the sync wait, queued).
    await wait_until(request, lambda: (row := oq.operation(db, principal.workspace_id, operation_id)) is not None
                     and row["status"] != "queued", request.state.settings.scan_sync_wait_s)
    row = await run_db(request, oq.operation, db, principal.workspace_id, operation_id)
    return json_response(views.as_dispatched(views.item_view(row)) if row else views.pending_item_view(scan_request))


async def delete_operation(request: Request):
    """Remove a finished run from the Activity list; its violations and events stay."""
    principal = await authenticate(request, "scan:trigger")
    run = await find_run(request, principal)
    if run.status not in FINISHED:
        raise ApiError(409, "The run is still in progress; abort it before deleting it")
    await _command(request, principal, c.DELETE_SCAN, run)
    db = request.state.db
    await wait_until(request, lambda: oq.operation(db, principal.workspace_id, run.operation_id) is None,
                     request.state.settings.scan_sync_wait_s)
    return Response(status_code=204)


query_params("GET", "/api/operations", oq.OperationsQuery)
query_params("PUT", "/api/operations/run/{id}", param("force_abort", {"type": "boolean"},
                                                      "abort a run still in flight first, then resume it"))

routes = [
    Route("/api/operations", list_operations, methods=["GET"]),
    Route("/api/operations/abort/{id}", abort_operation, methods=["PUT"]),
    Route("/api/operations/run/{id}", resume_operation, methods=["PUT"]),
    Route("/api/operations/rerun/{id}", rerun_operation, methods=["PUT"]),
    Route("/api/operations/{id}", get_operation, methods=["GET"]),
    Route("/api/operations/{id}", delete_operation, methods=["DELETE"]),
    Route("/api/operations/{id}/containers", list_containers, methods=["GET"]),
]
