"""The Activity list (seed 003) as SQL over the read models: every run of every kind."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.web.params import MAX_PAGE, QueryInt
from services.domain.kinds import SENSITIVE, kinds_of_operation_type
from services.domain.vocabulary import FINISHED, sql_list

OperationType = Literal["catalog", "profile", "scan", "external_scan", "export", "materialize", "promote"]
Result = Literal["queued", "running", "success", "failure", "aborted"]
STATUSES = {"queued": ("queued",), "running": ("running",), "success": ("completed",),
            "failure": ("failed", "partial_failure"), "aborted": ("aborted",)}


class OperationsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: QueryInt | None = None
    schedule_id: QueryInt | None = None
    operation_type: OperationType | None = None
    finished: bool | None = None
    result: list[Result] = []
    created_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    datastore: list[QueryInt] = []
    container: list[QueryInt] = []
    has_logs: bool | None = None
    offset: QueryInt = Field(0, ge=-1440, le=1440, description="minutes to add to UTC for the caller's local dates")
    sort_created: Literal["asc", "desc"] | None = None
    sort_duration: Literal["asc", "desc"] | None = None
    page: QueryInt = Field(1, ge=1, le=MAX_PAGE)
    size: QueryInt = Field(50, ge=1, le=1000)


LIST_FIELDS = ("result", "datastore", "container")

# A finished run shows as running until all its violations are in the read model (as a
# compliance scan does), so `success` always comes with complete results.
SHOWN_STATUS = (f"(CASE WHEN s.finalized = 0 AND s.status IN {sql_list(FINISHED)}"
                " THEN 'running' ELSE s.status END)")
HAS_LOGS = "(s.error IS NOT NULL OR s.scan_id IN (SELECT scan_id FROM rm_units WHERE error IS NOT NULL))"
DURATION = "(julianday(s.finished_at) - julianday(s.started_at))"
# A sensitive-data scan's records are the files it scanned and its anomalies the findings, as its chunks
# reported them so far (an aborted scan's unfinished chunks too), the counts of GET /api/v1/scans/:id
# (api/sensitive/queries.py). CASE evaluates its subqueries only for the rows of that kind.
IS_SENSITIVE = f"s.kind = '{SENSITIVE.name}'"
RECORDS = (f"(CASE WHEN {IS_SENSITIVE} THEN (SELECT COUNT(*) FROM rm_sensitive_files f WHERE f.scan_id = s.scan_id"
           " AND f.status = 'scanned') ELSE s.record_count END)")
# One count per run (issue 20): the violations on the ledger as the read model holds them, the number the
# scan's violation list totals, its GET /api/scan/{id} once settled, and its summary, at every moment of an
# abort, a resume or a rerun (the ledger's count at an abort leaves out the units cut short, whose
# violations are listed all the same). A sensitive scan's: its counted files' findings, as its own view's.
ANOMALIES = (f"(CASE WHEN {IS_SENSITIVE} THEN (SELECT COALESCE(SUM(f.findings), 0) FROM rm_sensitive_files f"
             " WHERE f.scan_id = s.scan_id) ELSE s.violations_seen END)")
COLUMNS = (f"s.*, {SHOWN_STATUS} AS shown_status, (SELECT COUNT(*) FROM rm_units cu WHERE cu.scan_id = s.scan_id"
           f" AND cu.status IN ('completed', 'failed')) AS units_done, {RECORDS} AS records_processed,"
           f" {ANOMALIES} AS anomalies_identified")


@dataclass(frozen=True)
class Runs:
    """One arm of the Activity list: its table, its columns (LIST_COLUMNS), and how the filters read it."""
    source: str
    select: tuple[str, ...]  # LIST_COLUMNS' expressions
    where: str  # the workspace's runs (its one `?`)
    status: str
    started_at: str
    finished_at: str
    datastore_id: str
    units: str  # the runs having a unit (container) that matches `{}`
    unit_datastore: str
    unit_container: str
    has_logs: str


# The list's columns, the same in both arms: what item_view reads, the sort keys (a run without a duration,
# unfinished, sorts last) and `pending_request`: the request of a run not projected yet (NULL for the others),
# shown by pending_item_view as GET /api/operations/{id} shows it.
LIST_COLUMNS = ("operation_id", "kind", "status", "shown_status", "created_at", "started_at", "finished_at", "error",
                "requested_by", "datastore_id", "datastore_name", "units_total", "units_done", "records_processed",
                "anomalies_identified", "no_duration", "duration", "pending_request")
PROJECTED = Runs(
    source="rm_scans s",
    select=("s.operation_id", "s.kind", "s.status", SHOWN_STATUS, "s.created_at", "s.started_at", "s.finished_at",
            "s.error", "s.requested_by", "s.datastore_id", "s.datastore_name", "s.units_total",
            "(SELECT COUNT(*) FROM rm_units cu WHERE cu.scan_id = s.scan_id AND cu.status IN ('completed', 'failed'))",
            RECORDS, ANOMALIES, f"CASE WHEN {DURATION} IS NULL THEN 1 ELSE 0 END", DURATION, "NULL"),
    where="s.workspace_id = ? AND s.deleted_at IS NULL AND s.operation_id IS NOT NULL",
    status=SHOWN_STATUS, started_at="s.started_at", finished_at="s.finished_at", datastore_id="s.datastore_id",
    units="s.scan_id IN (SELECT scan_id FROM rm_units WHERE {})",  # uncorrelated: computed once, not once per run
    unit_datastore="datastore_id", unit_container="container_id", has_logs=HAS_LOGS)
# A run accepted on the ledger that no coordinator has taken up yet (services.readmodels.scan_requests):
# queued, not started, without logs; its datastore and containers are its request's. The projector moves a
# scan from there to rm_scans in one transaction; NOT EXISTS keeps a run from ever showing twice all the same.
PENDING = Runs(
    source="rm_scan_requests r",
    select=("r.operation_id", "r.kind", "'queued'", "'queued'", "r.created_at", "NULL", "NULL", "NULL", "NULL", "NULL",
            "NULL", "0", "0", "0", "0", "1", "NULL", "r.request"),
    where=("r.workspace_id = ? AND r.operation_id IS NOT NULL"
           " AND NOT EXISTS (SELECT 1 FROM rm_scans x WHERE x.scan_id = r.scan_id)"),
    status="'queued'", started_at="NULL", finished_at="NULL",
    datastore_id="CAST(json_extract(r.request, '$.datastore.id') AS INTEGER)",
    units="EXISTS (SELECT 1 FROM json_each(r.request, '$.targets') t WHERE {})",
    unit_datastore="CAST(json_extract(t.value, '$.container.datastore_id') AS INTEGER)",
    unit_container="CAST(json_extract(t.value, '$.container.id') AS INTEGER)", has_logs="1 = 0")


def _in(column: str, values, args: list) -> str:
    args.extend(values)
    return f"{column} IN ({','.join('?' * len(values))})"


def _where(runs: Runs, workspace_id: str, q: OperationsQuery) -> tuple[str, list]:
    where, args = [runs.where], [workspace_id]
    if q.id is not None:
        where.append("operation_id = ?")
        args.append(q.id)
    if q.schedule_id is not None:
        where.append("1 = 0")  # runs are on demand: none was triggered by a schedule
    if q.operation_type is not None:
        kinds = kinds_of_operation_type(q.operation_type)  # none for the types no run of ours has
        where.append(_in("kind", kinds, args) if kinds else "1 = 0")
    if q.finished is not None:
        where.append(("" if q.finished else "NOT ") + _in(runs.status, FINISHED, args))
    if q.result:
        where.append(_in(runs.status, [st for r in q.result for st in STATUSES[r]], args))
    shift = f"{q.offset:+d} minutes"
    for column, day in (("created_at", q.created_date), (runs.started_at, q.start_date),
                        (runs.finished_at, q.end_date)):
        if day is not None:
            where.append(f"date({column}, ?) = ?")
            args += [shift, day.isoformat()]
    if q.datastore:
        where.append(f"({_in(runs.datastore_id, q.datastore, args)} OR"
                     f" {runs.units.format(_in(runs.unit_datastore, q.datastore, args))})")
    if q.container:
        where.append(runs.units.format(_in(runs.unit_container, q.container, args)))
    if q.has_logs is not None:
        where.append(runs.has_logs if q.has_logs else f"NOT ({runs.has_logs})")
    return " AND ".join(where), args


def _order(q: OperationsQuery) -> str:
    keys = []
    if q.sort_created:
        keys.append(f"created_at {q.sort_created.upper()}")
    if q.sort_duration:
        keys.append(f"no_duration, duration {q.sort_duration.upper()}")  # unfinished runs last
    keys.append("operation_id DESC")
    return ", ".join(keys)


def operations_page(db, workspace_id: str, q: OperationsQuery) -> tuple[list, int]:
    """A page of the workspace's runs, projected and pending alike: one UNION ALL, each arm filtered by
    itself, merged in the page's order (each arm in its index order when sorted by id)."""
    projected, projected_args = _where(PROJECTED, workspace_id, q)
    pending, pending_args = _where(PENDING, workspace_id, q)
    total = db.execute(f"SELECT (SELECT COUNT(*) FROM {PROJECTED.source} WHERE {projected})"
                       f" + (SELECT COUNT(*) FROM {PENDING.source} WHERE {pending})",
                       [*projected_args, *pending_args]).fetchone()[0]
    rows = db.execute(f"{_select(PROJECTED, projected)} UNION ALL {_select(PENDING, pending)}"
                      f" ORDER BY {_order(q)} LIMIT ? OFFSET ?",
                      [*projected_args, *pending_args, q.size, (q.page - 1) * q.size]).fetchall()
    return rows, total


def _select(runs: Runs, where: str) -> str:
    return f"SELECT {', '.join(f'{e} AS {n}' for e, n in zip(runs.select, LIST_COLUMNS, strict=True))}" \
           f" FROM {runs.source} WHERE {where}"


def pages(total: int, size: int) -> int:
    return math.ceil(total / size) if total else 0


def operation(db, workspace_id: str, operation_id: int):
    return db.execute(f"SELECT {COLUMNS} FROM rm_scans s WHERE s.workspace_id = ? AND s.operation_id = ?"
                      " AND s.deleted_at IS NULL", (workspace_id, operation_id)).fetchone()


def operation_id_of(db, scan_id: str) -> int | None:
    row = db.execute("SELECT operation_id FROM rm_scans WHERE scan_id = ?", (scan_id,)).fetchone()
    return row["operation_id"] if row else None


def units(db, scan_id: str) -> list:
    """A run's units; a sensitive-data scan's chunks with the files they processed and the findings in
    those files so far (as GET /api/v1/scans/:id/workers counts them), NULL for the other kinds' units."""
    chunk = f"u.scan_kind = '{SENSITIVE.name}'"
    return db.execute(
        f"SELECT u.*, CASE WHEN {chunk} THEN (SELECT COUNT(*) FROM rm_sensitive_files f"
        " WHERE f.unit_id = u.unit_id) END AS files_processed,"
        f" CASE WHEN {chunk} THEN (SELECT COALESCE(SUM(f.findings), 0) FROM rm_sensitive_files f"
        " WHERE f.unit_id = u.unit_id) END AS findings"
        " FROM rm_units u WHERE u.scan_id = ? ORDER BY u.idx", (scan_id,)).fetchall()


def completed_units(db, scan_id: str) -> list[str]:
    """The units whose completion the read models show: their results are on the log (ResumeScan)."""
    return [r[0] for r in db.execute("SELECT unit_id FROM rm_units WHERE scan_id = ? AND status = 'completed'"
                                     " ORDER BY idx", (scan_id,))]
