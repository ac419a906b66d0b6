"""Run operations (seed 003): list, inspect, abort, resume, rerun and delete any run."""
from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import operations_queries as oq
from api import operations_views as views
from api.auth import Principal, authenticate
from api.errors import ApiError, details_from, not_found
from api.responses import json_response
from api.scan_commands import send_command, start_scan, wait_until
from services import config_store
from services import contracts as c
from services.config_store import new_id
from services.envelope import utcnow

RUN_NOT_FOUND = "Run not found"
FINISHED = ("completed", "partial_failure", "failed", "aborted")


def _query(request: Request) -> oq.OperationsQuery:
    params = request.query_params
    raw = {k: (params.getlist(k) if k in oq.LIST_FIELDS else params[k]) for k in params.keys()}
    try:
        return oq.OperationsQuery.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(422, "Invalid query parameters", details_from(exc)) from None


async def list_operations(request: Request):
    """Every run of the workspace, filtered, sorted and paginated."""
    principal = authenticate(request, "assets:read")
    q = _query(request)
    rows, total = oq.operations_page(request.app.state.db, principal.workspace_id, q)
    return json_response({"items": [views.item_view(r) for r in rows], "total": total, "page": q.page,
                          "size": q.size, "pages": oq.pages(total, q.size)})


def _operation_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit():
        raise ApiError(400, "Invalid run id", [{"path": ["id"], "message": "Expected an integer"}])
    return int(raw)


class Run:
    """A run by its integer id: projected (row) or only accepted so far (pending request)."""

    def __init__(self, request: Request, principal: Principal):
        db = request.app.state.db
        self.operation_id = _operation_id(request)
        self.row = oq.operation(db, principal.workspace_id, self.operation_id)
        self.pending = None
        if self.row is None:
            scan_id = config_store.scan_id_of_operation(db, self.operation_id)
            pending = scan_id and config_store.get_scan_request(db, principal.workspace_id, scan_id)
            if not pending or _projected(db, scan_id):  # unknown, another workspace's, or deleted
                raise not_found(RUN_NOT_FOUND)
            self.pending = pending["request"]
        self.scan_id = self.row["scan_id"] if self.row else self.pending["scan_id"]
        self.kind = self.row["kind"] if self.row else self.pending["kind"]
        self.status = self.row["status"] if self.row else "queued"

    def view(self) -> dict:
        return views.item_view(self.row) if self.row else views.pending_item_view(self.pending)


def _projected(db, scan_id: str) -> bool:
    return db.execute("SELECT 1 FROM rm_scans WHERE scan_id = ?", (scan_id,)).fetchone() is not None


async def get_operation(request: Request):
    """One run in full: the configuration it used, its summary metrics, who triggered it."""
    principal = authenticate(request, "assets:read")
    run = Run(request, principal)
    if run.row is None:
        return json_response(run.view())
    db = request.app.state.db
    rerun_of = oq.operation_id_of(db, run.row["rerun_of"]) if run.row["rerun_of"] else None
    return json_response(views.detail_view(run.row, rerun_of))


async def list_containers(request: Request):
    """The per-container breakdown of a run."""
    principal = authenticate(request, "assets:read")
    run = Run(request, principal)
    units = oq.units(request.app.state.db, run.scan_id) if run.row else []
    return json_response({"items": [views.container_view(u, run.status) for u in units], "total": len(units)})


async def _command(request: Request, principal: Principal, type_: str, run: Run) -> None:
    await send_command(request, type_, run.scan_id, principal.workspace_id,
                       {"scan_id": run.scan_id, "requested_by": principal.user})


async def _settled_view(request: Request, principal: Principal, run: Run, done) -> Response:
    """Answer once the projector shows the change (or after the sync wait), with the run as it is."""
    db = request.app.state.db

    def current():
        return oq.operation(db, principal.workspace_id, run.operation_id)

    await wait_until(lambda: (row := current()) is not None and done(row), request.app.state.settings.scan_sync_wait_s)
    row = current()
    return json_response(views.item_view(row) if row else run.view())


async def abort_operation(request: Request):
    """Stop a run in flight; what it found so far is kept."""
    principal = authenticate(request, "scan:trigger")
    run = Run(request, principal)
    if run.status in FINISHED:
        raise ApiError(409, f"The run has already finished ({views.RESULT[run.status]})")
    await _command(request, principal, c.ABORT_SCAN, run)
    return await _settled_view(request, principal, run, lambda row: row["shown_status"] in FINISHED)


async def resume_operation(request: Request):
    """Continue an aborted or failed run with only its unprocessed containers."""
    principal = authenticate(request, "scan:trigger")
    run = Run(request, principal)
    force = request.query_params.get("force_abort", "false").lower()
    if force not in ("true", "false", "1", "0"):
        raise ApiError(422, "Invalid query parameters", [{"path": ["force_abort"], "message": "Expected a boolean"}])
    if run.kind == "catalog":
        raise ApiError(409, "A sync cannot be resumed; rerun it")
    if run.status in ("queued", "running"):
        if force not in ("true", "1"):
            raise ApiError(409, "The run is still in progress; abort it first or pass force_abort=true")
        await _command(request, principal, c.ABORT_SCAN, run)
    elif run.status == "completed":
        raise ApiError(409, "The run completed; there is nothing to resume")
    elif run.row and run.row["units_total"] == 0:
        raise ApiError(409, "The run never started, so there is nothing to resume; rerun it")
    started = run.row["finished_at"] if run.row else None
    await _command(request, principal, c.RESUME_SCAN, run)
    return await _settled_view(request, principal, run,
                               lambda row: row["status"] == "running" or row["finished_at"] != started)


async def rerun_operation(request: Request):
    """A new run from scratch with the recorded configuration of a finished one."""
    principal = authenticate(request, "scan:trigger")
    run = Run(request, principal)
    if run.status not in FINISHED:
        raise ApiError(409, "The run is still in progress; rerun it once it has finished")
    db = request.app.state.db
    original = config_store.get_scan_request(db, principal.workspace_id, run.scan_id)["request"]
    scan_request = {**original, "scan_id": new_id(), "requested_by": principal.user, "requested_at": utcnow(),
                    "rerun_of": run.scan_id}
    scan_request.pop("operation_id", None)
    operation_id = await start_scan(request, scan_request)
    await wait_until(lambda: oq.operation(db, principal.workspace_id, operation_id) is not None,
                     request.app.state.settings.scan_sync_wait_s)
    row = oq.operation(db, principal.workspace_id, operation_id)
    return json_response(views.item_view(row) if row else views.pending_item_view(scan_request))


async def delete_operation(request: Request):
    """Remove a finished run from the Activity list; its violations and events stay."""
    principal = authenticate(request, "scan:trigger")
    run = Run(request, principal)
    if run.status not in FINISHED:
        raise ApiError(409, "The run is still in progress; abort it before deleting it")
    await _command(request, principal, c.DELETE_SCAN, run)
    db = request.app.state.db
    await wait_until(lambda: oq.operation(db, principal.workspace_id, run.operation_id) is None,
                     request.app.state.settings.scan_sync_wait_s)
    return Response(status_code=204)


routes = [
    Route("/api/operations", list_operations, methods=["GET"]),
    Route("/api/operations/abort/{id}", abort_operation, methods=["PUT"]),
    Route("/api/operations/run/{id}", resume_operation, methods=["PUT"]),
    Route("/api/operations/rerun/{id}", rerun_operation, methods=["PUT"]),
    Route("/api/operations/{id}", get_operation, methods=["GET"]),
    Route("/api/operations/{id}", delete_operation, methods=["DELETE"]),
    Route("/api/operations/{id}/containers", list_containers, methods=["GET"]),
]
