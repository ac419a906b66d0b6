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
# SQLite, but the positions come from these names, so a column cannot slip. The columns a
# violation most often leaves NULL come last, and a row leaves out its trailing NULLs: binding a
# None costs sqlite3 a trip through its adapters (~0.3 µs, ten times an int or a str), and most
# violations (a compliance scan's, without a window) have three.
COLUMNS = ("violation_id", "scan_id", "rule_id", "rule_name", "rule_type", "severity", "account", "record_index",
           "record_key", "value", "signature", "detected_at", "record", "window", "container_id", "observed")
SCAN_ID = COLUMNS.index("scan_id")
_SPARSE = len(COLUMNS) - COLUMNS.index("window")  # the trailing columns a row may leave out


def _insert(width: int) -> str:
    """The INSERT of a row of the first `width` columns (the others NULL)."""
    quoted = ", ".join(f'"{c}"' for c in COLUMNS[:width])  # "window" is a keyword in PostgreSQL
    return (f"INSERT INTO rm_violations ({quoted}) VALUES ({', '.join('?' * width)})"
            " ON CONFLICT(violation_id) DO NOTHING")


INSERTS = {width: _insert(width) for width in range(len(COLUMNS) - _SPARSE, len(COLUMNS) + 1)}
INSERT = INSERTS[len(COLUMNS)]  # a whole row's
_row = itemgetter(*COLUMNS)


def _trimmed(values: tuple) -> tuple:
    """The row without its trailing NULLs (of the sparse columns)."""
    width = len(values)
    while width > len(COLUMNS) - _SPARSE and values[width - 1] is None:
        width -= 1
    return values[:width]


def row_of_event(event: dict) -> tuple:
    """A violation event's row (decoded as a dict: services.domain.codec.decode_checked)."""
    d = event["data"]
    observed, record = d.get("observed"), d.get("record")
    return _trimmed(_row({**d, "detected_at": event["time"], "container_id": d.get("container_id"),
                          "observed": to_json(observed) if observed else None,
                          "record": to_json(record) if record else None}))


def row_of(decoded: tuple[Violation, str | None, str | None]) -> tuple:
    """The same row of a violation decoded straight into a struct and its record's and observed's text
    (services.domain.codec.decode_violation), as wide as _trimmed makes it: written out, one per violation."""
    v, record, observed = decoded
    d = v.data
    if observed is None:
        if d.container_id is None:  # a compliance scan's violation
            if d.window is None:
                return (d.violation_id, d.scan_id, d.rule_id, d.rule_name, d.rule_type, d.severity, d.account,
                        d.record_index, d.record_key, d.value, d.signature, v.time, record)
            return (d.violation_id, d.scan_id, d.rule_id, d.rule_name, d.rule_type, d.severity, d.account,
                    d.record_index, d.record_key, d.value, d.signature, v.time, record, d.window)
        return (d.violation_id, d.scan_id, d.rule_id, d.rule_name, d.rule_type, d.severity, d.account,
                d.record_index, d.record_key, d.value, d.signature, v.time, record, d.window, d.container_id)
    return (d.violation_id, d.scan_id, d.rule_id, d.rule_name, d.rule_type, d.severity, d.account, d.record_index,
            d.record_key, d.value, d.signature, v.time, record, d.window, d.container_id, observed)


def violations_detected(conn, recs: list[Record]) -> set[str]:
    """Insert the batch's violations, scan by scan (and row width by width), and count on each scan the
    ones that were new: a re-delivered violation is not inserted (its id is the key), so it is not
    counted twice. The count is the insert's own (rowcount), not a lookup of every id before it.
    Returns the scans the violations belong to (apply_batch finalizes them)."""
    groups: dict[tuple[str, int], list[tuple]] = {}
    for rec in recs:
        values = rec.row or row_of_event(rec.event)
        key = values[SCAN_ID], len(values)
        group = groups.get(key)
        if group is None:
            groups[key] = [values]
        else:
            group.append(values)
    inserted: dict[str, int] = {}
    for (scan_id, width), rows in groups.items():
        inserted[scan_id] = inserted.get(scan_id, 0) + conn.executemany(INSERTS[width], rows).rowcount
    conn.executemany("UPDATE rm_scans SET violations_seen = violations_seen + ? WHERE scan_id = ?",
                     [(n, scan_id) for scan_id, n in inserted.items() if n])
    return set(inserted)


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
