"""Reads of the read models built by the projector, always scoped to one workspace."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from services.adapters.db import on_postgres
from services.domain.kinds import asset_run_kinds
from services.domain.vocabulary import FINISHED, IN_FLIGHT, sql_list


def scan(db, workspace_id: str, scan_id: str):
    return db.execute("SELECT * FROM rm_scans WHERE scan_id = ? AND workspace_id = ?",
                      (scan_id, workspace_id)).fetchone()


# A scan whose RunScan is on the ledger but whose scan.requested is not (yet) projected is a
# pending request (rm_scan_requests). The projector moves a scan from there to rm_scans in one
# transaction, so rm_scans is read again after a miss in both: a scan is never in neither.

def _pending(row) -> dict | None:
    return None if row is None else {**dict(row), "request": orjson.loads(row["request"])}


def pending_request(db, workspace_id: str, scan_id: str) -> dict | None:
    """A scan accepted on the ledger, not yet requested by the coordinator: {scan_id, …, request}."""
    return _pending(db.execute("SELECT * FROM rm_scan_requests WHERE scan_id = ? AND workspace_id = ?",
                               (scan_id, workspace_id)).fetchone())


def pending_operation(db, workspace_id: str, operation_id: int) -> dict | None:
    return _pending(db.execute("SELECT * FROM rm_scan_requests WHERE workspace_id = ? AND operation_id = ?",
                               (workspace_id, operation_id)).fetchone())


def projected_or_pending(projected: Callable[[], Any], pending: Callable[[], dict | None]) -> tuple:
    """(projected row, None), (None, pending request) or (None, None) for a run unknown here.

    The one "a projected row, or else the pending request" lookup: `projected()` reads the
    run's row (rm_scans, or the Activity list's view of it), `pending()` its rm_scan_requests
    row; a miss in both reads `projected()` again, as the scan may have moved in between.
    """
    row = projected()
    if row is not None:
        return row, None
    request = pending()
    return (None, request) if request is not None else (projected(), None)


def scan_or_pending(db, workspace_id: str, scan_id: str) -> tuple:
    """A scan by its id: (projected row, None), (None, pending request) or (None, None)."""
    return projected_or_pending(lambda: scan(db, workspace_id, scan_id),
                                lambda: pending_request(db, workspace_id, scan_id))


def is_known(db, scan_id: str) -> bool:
    """Whether the projector shows the scan at all, pending or projected."""
    return any(db.execute(f"SELECT 1 FROM {table} WHERE scan_id = ?", (scan_id,)).fetchone()
               for table in ("rm_scan_requests", "rm_scans"))  # in the order a scan moves


def score_history(db, scan_id: str) -> list[dict]:
    rows = db.execute("SELECT score, timestamp, action, violation_id FROM rm_score_history WHERE scan_id = ?"
                      " ORDER BY position", (scan_id,))
    return [dict(r) for r in rows]


def is_settled(row) -> bool:
    """Finished on the ledger and every violation projected: results are final."""
    return row is not None and row["status"] in FINISHED and bool(row["finalized"])


# A violation as the API shows it: (field, expression over rm_violations v joined to its status s).
_VIOLATION = (("id", "v.violation_id"), ("scan_id", "v.scan_id"), ("rule_id", "v.rule_id"),
              ("rule_name", "v.rule_name"), ("rule_type", "v.rule_type"), ("severity", "v.severity"),
              ("account", "v.account"), ("record_index", "v.record_index"), ("record_key", "v.record_key"),
              ("value", "v.value"), ("window", 'v."window"'), ("signature", "v.signature"),
              ("status", "COALESCE(s.status, 'open')"), ("detected_at", "v.detected_at"), ("record", "v.record"),
              ("observed", "v.observed"))
VIOLATION_COLUMNS = ", ".join(f'{expr} AS "{name}"' for name, expr in _VIOLATION)


def _json_object(column: str) -> str:
    """A column of JSON text as an object for json_object(); {} where it holds none (as violation_view)."""
    return f"json(CASE json_type(NULLIF({column}, '')) WHEN 'object' THEN {column} ELSE '{{}}' END)"


# The same violation built as JSON text by SQLite, in C: a page's response embeds each row as it is
# (orjson.Fragment) instead of making 16 Python values a row, a dict, and JSON of them again. A page of
# 50: 288 -> 123 µs of the API's CPU (docs/performance.md).
VIOLATION_JSON = "json_object(" + ", ".join(
    f"'{name}', {_json_object(expr) if name in ('record', 'observed') else expr}" for name, expr in _VIOLATION) + ")"


def violation_view(row) -> dict:
    """A violation with its record's mapped fields ({} when it has none: a group's, a monitor's anomaly) and,
    a monitor's anomaly, what the monitor measured ({} for a rule's violation): counts and sample rows."""
    return {**row, "record": loads(row["record"]) or {}, "observed": loads(row["observed"]) or {}}


def violations_page(db, scan_id: str, page: int, size: int, rule_id: str | None, status: str | None,
                    severity: str | None) -> dict:
    """A page of a scan's violations: {items, total, page, size, pages}. Each item is ready for orjson: on
    SQLite its JSON text (an orjson.Fragment, VIOLATION_JSON), on PostgreSQL violation_view's dict."""
    where, args = ["v.scan_id = ?"], [scan_id]
    if rule_id:
        where.append("v.rule_id = ?")
        args.append(rule_id)
    if status:
        where.append("COALESCE(s.status, 'open') = ?")
        args.append(status)
    if severity:
        where.append("v.severity = ?")
        args.append(severity)
    clause = " AND ".join(where)
    joined = "FROM rm_violations v LEFT JOIN rm_violation_status s ON s.violation_id = v.violation_id"
    base = f"{joined} WHERE {clause}"
    # Unfiltered, the total is the scan's own count of its projected violations (rm_scans.violations_seen,
    # what the projector inserted for it); filtered, a count over the index, joined to the statuses
    # only when filtered by one: each page of a 100k-violation scan counted them all, and joined each.
    seen = None if len(where) > 1 else db.execute("SELECT violations_seen FROM rm_scans WHERE scan_id = ?",
                                                   [scan_id]).fetchone()
    if seen is not None:
        total = seen[0]
    else:
        counted = base if status else f"FROM rm_violations v WHERE {clause}"
        total = db.execute(f"SELECT COUNT(*) {counted}", args).fetchone()[0]
    order = "ORDER BY v.rule_id, v.record_index, v.record_key"
    if status or severity or on_postgres(db):
        page_of = f"{base} {order} LIMIT ? OFFSET ?"
    else:
        # The rows skipped to reach a page walked in the page index alone (on SQLite every index holds the
        # rowid), not joined and read from the table each: page 2,000 of a 100k-violation scan in 4 ms,
        # not 23. Ties (a rule's group violations) keep the index's order, by rowid.
        order += ", v.rowid"
        page_of = (f"{joined} WHERE v.rowid IN (SELECT v.rowid FROM rm_violations v WHERE {clause} {order}"
                   f" LIMIT ? OFFSET ?) {order}")
    if on_postgres(db):
        rows = db.execute(f"SELECT {VIOLATION_COLUMNS} {page_of}", [*args, size, (page - 1) * size])
        items = [violation_view(dict(r)) for r in rows]
    else:
        rows = db.execute(f"SELECT {VIOLATION_JSON} {page_of}", [*args, size, (page - 1) * size])
        items = [orjson.Fragment(r[0]) for r in rows]
    return {"items": items, "total": total, "page": page, "size": size,
            "pages": math.ceil(total / size) if total else 0}


def violation(db, workspace_id: str, violation_id: str):
    return db.execute(f"SELECT {VIOLATION_COLUMNS}, sc.finalized, sc.status AS scan_status FROM rm_violations v"
                      " JOIN rm_scans sc ON sc.scan_id = v.scan_id"
                      " LEFT JOIN rm_violation_status s ON s.violation_id = v.violation_id"
                      " WHERE v.violation_id = ? AND sc.workspace_id = ?", (violation_id, workspace_id)).fetchone()


def loads(value):
    return orjson.loads(value) if value else None


def asset_profile(db, container_id: int):
    return db.execute("SELECT columns, row_count, synced_at FROM rm_asset_profiles WHERE container_id = ?",
                      (container_id,)).fetchone()


def asset_runs(db, asset_ids: list[int]) -> tuple[dict, dict]:
    """Per asset, its monitor run in flight and its latest finished run (units of monitor scans).

    A unit left pending by an aborted scan is neither: it never ran. Two index lookups per
    asset (newest first), so the answer does not slow down as the history grows.
    """
    if not asset_ids:
        return {}, {}
    # CAST: json_each gives numbers on SQLite, text on PostgreSQL (services/adapters/pg.py)
    latest = ("SELECT u.unit_id FROM rm_units u {join} WHERE u.container_id = CAST(j.value AS INTEGER)"
              f" AND u.scan_kind IN {sql_list(asset_run_kinds())}"
              " AND u.status IN ({states}) {extra} ORDER BY u.scan_created_at DESC, u.scan_id DESC LIMIT 1")
    finished = latest.format(join="", states="'completed', 'failed'", extra="")
    in_flight = latest.format(join="JOIN rm_scans s ON s.scan_id = u.scan_id", states="'pending', 'running'",
                              extra=f"AND s.status IN {sql_list(IN_FLIGHT)}")
    picks = db.execute(f"SELECT CAST(j.value AS INTEGER) AS asset_id, ({finished}) AS last_unit,"
                       f" ({in_flight}) AS current_unit FROM json_each(?) j",
                       (orjson.dumps(asset_ids).decode(),)).fetchall()
    wanted = [uid for p in picks for uid in (p["last_unit"], p["current_unit"]) if uid]
    units = {}
    if wanted:
        marks = ",".join("?" * len(wanted))
        units = {r["unit_id"]: r for r in db.execute(
            f"SELECT u.*, s.started_at AS scan_started_at FROM rm_units u JOIN rm_scans s ON s.scan_id = u.scan_id"
            f" WHERE u.unit_id IN ({marks})", wanted)}
    current = {p["asset_id"]: units[p["current_unit"]] for p in picks if p["current_unit"]}
    last = {p["asset_id"]: units[p["last_unit"]] for p in picks if p["last_unit"]}
    return current, last


def unit_monitors(db, unit_ids: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    if not unit_ids:
        return out
    marks = ",".join("?" * len(unit_ids))
    for r in db.execute(f"SELECT * FROM rm_unit_monitors WHERE unit_id IN ({marks}) ORDER BY unit_id, position",
                        unit_ids):
        out.setdefault(r["unit_id"], []).append(dict(r))
    return out
