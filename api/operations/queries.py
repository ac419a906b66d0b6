"""The Activity list (seed 003) as SQL over the read models: every run of every kind."""
from __future__ import annotations

import math
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


def _in(column: str, values, args: list) -> str:
    args.extend(values)
    return f"{column} IN ({','.join('?' * len(values))})"


def _where(workspace_id: str, q: OperationsQuery) -> tuple[str, list]:
    where, args = ["s.workspace_id = ?", "s.deleted_at IS NULL", "s.operation_id IS NOT NULL"], [workspace_id]
    if q.id is not None:
        where.append("s.operation_id = ?")
        args.append(q.id)
    if q.schedule_id is not None:
        where.append("1 = 0")  # runs are on demand: none was triggered by a schedule
    if q.operation_type is not None:
        kinds = kinds_of_operation_type(q.operation_type)  # none for the types no run of ours has
        where.append(_in("s.kind", kinds, args) if kinds else "1 = 0")
    if q.finished is not None:
        where.append(("" if q.finished else "NOT ") + _in(SHOWN_STATUS, FINISHED, args))
    if q.result:
        where.append(_in(SHOWN_STATUS, [st for r in q.result for st in STATUSES[r]], args))
    shift = f"{q.offset:+d} minutes"
    for column, day in (("created_at", q.created_date), ("started_at", q.start_date), ("finished_at", q.end_date)):
        if day is not None:
            where.append(f"date(s.{column}, ?) = ?")
            args += [shift, day.isoformat()]
    # uncorrelated IN (SELECT …): computed once, not once per run
    if q.datastore:
        unit_args: list = []
        units = _in("datastore_id", q.datastore, unit_args)
        where.append(f"({_in('s.datastore_id', q.datastore, args)} OR s.scan_id IN"
                     f" (SELECT scan_id FROM rm_units WHERE {units}))")
        args += unit_args
    if q.container:
        where.append(f"s.scan_id IN (SELECT scan_id FROM rm_units WHERE {_in('container_id', q.container, args)})")
    if q.has_logs is not None:
        where.append(HAS_LOGS if q.has_logs else f"NOT {HAS_LOGS}")
    return " AND ".join(where), args


def _order(q: OperationsQuery) -> str:
    keys = []
    if q.sort_created:
        keys.append(f"s.created_at {q.sort_created.upper()}")
    if q.sort_duration:
        keys.append(f"{DURATION} IS NULL, {DURATION} {q.sort_duration.upper()}")  # unfinished runs last
    keys.append("s.operation_id DESC")
    return ", ".join(keys)


def operations_page(db, workspace_id: str, q: OperationsQuery) -> tuple[list, int]:
    where, args = _where(workspace_id, q)
    total = db.execute(f"SELECT COUNT(*) FROM rm_scans s WHERE {where}", args).fetchone()[0]
    rows = db.execute(f"SELECT {COLUMNS} FROM rm_scans s WHERE {where} ORDER BY {_order(q)} LIMIT ? OFFSET ?",
                      [*args, q.size, (q.page - 1) * q.size]).fetchall()
    return rows, total


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
