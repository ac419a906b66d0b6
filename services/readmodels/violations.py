"""rm_violations and rm_violation_status: what the evaluators found, and what analysts decided.

Violations are idempotent on their deterministic id (the primary key), so they do not go
through rm_processed_events; they are inserted a batch at a time (services.readmodels.apply).
"""
from __future__ import annotations

from operator import itemgetter

from services.domain import contracts as c
from services.domain.codec import Violation
from services.readmodels.record import Record, to_json

TABLES = ("rm_violations", "rm_violation_status")


# The hot path (the bulk of the ledger): bound by position, ~25% faster than by name on
# SQLite, but the positions come from these names, so a column cannot slip.
COLUMNS = ("violation_id", "scan_id", "rule_id", "rule_name", "rule_type", "severity", "account", "record_index",
           "record_key", "value", "window", "signature", "detected_at", "container_id", "observed", "record")
_QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)  # "window" is a keyword in PostgreSQL
INSERT = (f"INSERT INTO rm_violations ({_QUOTED}) VALUES ({', '.join('?' * len(COLUMNS))})"
          " ON CONFLICT(violation_id) DO NOTHING")
_row = itemgetter(*COLUMNS)
SCAN_ID = COLUMNS.index("scan_id")


def row_of_event(event: dict) -> tuple:
    """A violation event's row (decoded as a dict: services.domain.codec.decode_checked)."""
    d = event["data"]
    observed, record = d.get("observed"), d.get("record")
    return _row({**d, "detected_at": event["time"], "container_id": d.get("container_id"),
                 "observed": to_json(observed) if observed else None, "record": to_json(record) if record else None})


def row_of(decoded: tuple[Violation, str | None, str | None]) -> tuple:
    """The same row of a violation decoded straight into a struct and its record's and observed's text
    (services.domain.codec.decode_violation)."""
    v, record, observed = decoded
    d = v.data
    return (d.violation_id, d.scan_id, d.rule_id, d.rule_name, d.rule_type, d.severity, d.account, d.record_index,
            d.record_key, d.value, d.window, d.signature, v.time, d.container_id, observed, record)


def row(rec: Record) -> tuple:
    """A violation record's row: decoded with it (services.readmodels.apply.decode_record), or from its event."""
    return rec.row or row_of_event(rec.event)


def violations_detected(conn, recs: list[Record]) -> set[str]:
    """Insert the batch's violations, scan by scan, and count on each scan the ones that were new: a
    re-delivered violation is not inserted (its id is the key), so it is not counted twice. The
    count is the insert's own (rowcount), not a lookup of every id before it. Returns the scans
    the violations belong to (apply_batch finalizes them)."""
    per_scan: dict[str, list[tuple]] = {}
    for rec in recs:
        values = row(rec)
        per_scan.setdefault(values[SCAN_ID], []).append(values)
    counted = []
    for scan_id, rows in per_scan.items():
        inserted = conn.executemany(INSERT, rows).rowcount
        if inserted:
            counted.append((inserted, scan_id))
    conn.executemany("UPDATE rm_scans SET violations_seen = violations_seen + ? WHERE scan_id = ?", counted)
    return set(per_scan)


def violation_status_changed(conn, rec: Record) -> None:
    conn.execute(
        "INSERT INTO rm_violation_status (violation_id, scan_id, status, changed_at, changed_by)"
        " VALUES (:violation_id, :scan_id, :status, :changed_at, :changed_by)"
        " ON CONFLICT(violation_id) DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at,"
        " changed_by = excluded.changed_by", rec.event["data"])


HANDLERS = {
    c.VIOLATION_DETECTED: violations_detected,  # batched: takes the batch's violations at once
    c.VIOLATION_STATUS_CHANGED: violation_status_changed,
}
