"""One apply function per event type, and the batch that applies them in one transaction.

Every apply is idempotent on event ids (violations by their primary key, lifecycle events
through rm_processed_events), so a re-emitted event changes nothing. Nothing here reads
the clock: the rows are a function of the ledger alone, which is what lets `replay`
arrive at exactly the rows of the live projector.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from services import contracts as c
from services import delta as deltas
from services.commands import is_expired

TERMINAL = ("completed", "partial_failure", "failed", "aborted")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    type: str | None
    event: dict
    timestamp: int | None = None  # the record's Kafka timestamp, ms (LogAppendTime on the commands topic)


def _json(value) -> str:
    return orjson.dumps(value).decode()


def _first_time(conn, event_id: str) -> bool:
    return conn.execute("INSERT INTO rm_processed_events (event_id) VALUES (?) ON CONFLICT DO NOTHING",
                        (event_id,)).rowcount == 1


def needs_timestamp(event: dict) -> bool:
    """Whether applying the event reads its record's timestamp (only a RunScan's expiry does)."""
    return event["type"] == c.RUN_SCAN


def run_scan(conn, rec: Record) -> None:
    """A RunScan command on the ledger: the scan is pending (queued) until scan.requested.

    A command the broker appended after its expiry never happened (the API answered 503 for
    it and the coordinator drops it), so it is not shown either. Once the scan is projected
    its request is in rm_scans, and a redelivered or replayed command adds nothing; so the
    table holds only what the coordinator has not taken up yet, on live and on replay alike.
    """
    if is_expired(rec.event, rec.timestamp):
        return
    d = rec.event["data"]
    conn.execute(
        "INSERT OR IGNORE INTO rm_scan_requests (scan_id, workspace_id, kind, operation_id, request, created_at)"
        " SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM rm_scans WHERE scan_id = ?)",
        (d["scan_id"], d["workspace_id"], d.get("kind", "compliance"), d.get("operation_id"), _json(d),
         d["requested_at"], d["scan_id"]))


def scan_requested(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute("DELETE FROM rm_scan_requests WHERE scan_id = ?", (d["scan_id"],))  # no longer pending
    policy, upload, mapping = d.get("policy") or {}, d.get("upload") or {}, d.get("mapping") or {}
    store = d.get("datastore") or {}
    checks = policy.get("rules") if policy else [m for t in d.get("targets") or [] for m in t["monitors"]]
    conn.execute(
        "INSERT INTO rm_scans (scan_id, workspace_id, kind, status, policy_id, policy_name, upload_id, mapping_id,"
        " audit_id, audit_name, mapping_config, temporal_scale, requested_by, rerun_of, pii_findings, record_total,"
        " rules_total, created_at, operation_id, datastore_id, datastore_name, request)"
        " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(scan_id) DO NOTHING",
        (d["scan_id"], d["workspace_id"], d["kind"], policy.get("id"), policy.get("name"), upload.get("id"),
         mapping.get("id"), d.get("audit_id"), d.get("audit_name"),
         _json(mapping["mapping"]) if mapping else None, mapping.get("temporal_scale"), d["requested_by"],
         d.get("rerun_of"), _json(upload.get("pii_findings", [])), upload.get("record_count", 0), len(checks),
         d["requested_at"], d.get("operation_id"), store.get("id"), store.get("name"), _json(d)))
    # violations travel on another topic and may have arrived first
    conn.execute("UPDATE rm_scans SET violations_seen = (SELECT COUNT(*) FROM rm_violations WHERE scan_id = ?)"
                 " WHERE scan_id = ?", (d["scan_id"], d["scan_id"]))


def scan_started(conn, rec: Record) -> None:
    d = rec.event["data"]
    # scan.requested came first on this partition; its kind and time are copied to the units
    # so an asset's latest runs are an index lookup, however long its history
    scan = conn.execute("SELECT kind, created_at FROM rm_scans WHERE scan_id = ?", (d["scan_id"],)).fetchone()
    conn.executemany(
        "INSERT INTO rm_units (unit_id, scan_id, idx, record_count, rules_total, status, container_id,"
        " container_name, container_type, datastore_id, scan_kind, scan_created_at)"
        " VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?) ON CONFLICT(unit_id) DO NOTHING",
        [(u["unit_id"], d["scan_id"], u["index"], u["record_count"], len(u["rule_ids"]),
          *_container(u.get("container")), scan["kind"], scan["created_at"]) for u in d["units"]])
    names = _monitor_names(conn, d["scan_id"])
    conn.executemany(
        "INSERT INTO rm_unit_monitors (unit_id, monitor_id, position, monitor_name, stage)"
        " VALUES (?, ?, ?, ?, 'pending') ON CONFLICT DO NOTHING",
        [(u["unit_id"], mid, i, names.get(mid, mid)) for u in d["units"] if u.get("container")
         for i, mid in enumerate(u["rule_ids"])])
    conn.execute(
        "UPDATE rm_scans SET status = 'running', started_at = ?, units_total = ?, rule_evals_total = ?"
        " WHERE scan_id = ? AND status = 'queued'",
        (d["started_at"], len(d["units"]), sum(len(u["rule_ids"]) for u in d["units"]), d["scan_id"]))


def _container(container: dict | None) -> tuple:
    if not container:
        return None, None, None, None
    return container["id"], container["name"], container["container_type"], container["datastore_id"]


def _monitor_names(conn, scan_id: str) -> dict[str, str]:
    row = conn.execute("SELECT request FROM rm_scans WHERE scan_id = ?", (scan_id,)).fetchone()
    targets = (orjson.loads(row["request"]).get("targets") or []) if row and row["request"] else []
    return {m["id"]: m["name"] for t in targets for m in t["monitors"]}


def _monitor_outcomes(conn, unit_id: str, outcomes: list[dict]) -> None:
    conn.executemany(
        "UPDATE rm_unit_monitors SET stage = ?, duration_ms = ?, error = ?, anomalies = ?"
        " WHERE unit_id = ? AND monitor_id = ?",
        [(o["stage"], o.get("duration_ms"), o.get("error"), o.get("anomalies", 0), unit_id, o["monitor_id"])
         for o in outcomes])


def unit_progressed(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute("UPDATE rm_units SET started_at = COALESCE(started_at, ?),"
                 " status = CASE status WHEN 'pending' THEN 'running' ELSE status END WHERE unit_id = ?",
                 (rec.event["time"], d["unit_id"]))
    if d.get("monitor"):
        _monitor_outcomes(conn, d["unit_id"], [d["monitor"]])
    if d.get("rules_total") is not None and d["rules_done"] < d["rules_total"]:
        # monitors run in order: the next one is the one running now
        conn.execute("UPDATE rm_unit_monitors SET stage = 'running' WHERE unit_id = ? AND position = ?"
                     " AND stage = 'pending'", (d["unit_id"], d["rules_done"]))
    row = conn.execute("SELECT rules_done FROM rm_units WHERE unit_id = ?", (d["unit_id"],)).fetchone()
    if row is None or row["rules_done"] >= d["rules_done"]:
        return
    conn.execute("UPDATE rm_units SET rules_done = ?, status = CASE status WHEN 'pending' THEN 'running' ELSE status END"
                 " WHERE unit_id = ?", (d["rules_done"], d["unit_id"]))
    conn.execute("UPDATE rm_scans SET rule_evals_done = rule_evals_done + ? WHERE scan_id = ?",
                 (d["rules_done"] - row["rules_done"], d["scan_id"]))


def unit_finished(conn, rec: Record) -> None:
    d = rec.event["data"]
    failed = rec.type == c.UNIT_FAILED
    found = sum(d.get("violations_by_rule", {}).values())
    conn.execute("UPDATE rm_units SET status = ?, violation_count = ?, error = ?, finished_at = ?,"
                 " started_at = COALESCE(started_at, ?), records_processed = ? WHERE unit_id = ?",
                 ("failed" if failed else "completed", found, d.get("error"), rec.event["time"], rec.event["time"],
                  d.get("record_count", 0), d["unit_id"]))
    _monitor_outcomes(conn, d["unit_id"], d.get("monitors", []))
    for profile in d.get("profile", []):
        conn.execute(
            "INSERT INTO rm_asset_profiles (container_id, scan_id, columns, row_count, synced_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(container_id) DO UPDATE SET scan_id = excluded.scan_id, columns = excluded.columns,"
            " row_count = excluded.row_count, synced_at = excluded.synced_at WHERE excluded.synced_at >= synced_at",
            (profile["container_id"], d["scan_id"], _json(profile["columns"]), profile["row_count"],
             rec.event["time"]))
    if not failed:
        conn.execute("UPDATE rm_scans SET record_count = record_count + ? WHERE scan_id = ?",
                     (d["record_count"], d["scan_id"]))


def scan_finished(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute(
        "UPDATE rm_scans SET status = ?, record_count = ?, rules_processed = ?, violation_count = ?,"
        " compliance_score = ?, error = ?, finished_at = ? WHERE scan_id = ?",
        (d["status"], d["record_count"], d["rules_processed"], d["violation_count"], d["compliance_score"],
         d["error"], d["finished_at"], d["scan_id"]))
    _score_entry(conn, rec, d["compliance_score"], d["finished_at"], f"scan_{d['status']}", None)


def scan_aborted(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute("UPDATE rm_scans SET status = 'aborted', finished_at = ?, violation_count = ?, error = NULL"
                 " WHERE scan_id = ?", (d["aborted_at"], d["violation_count"], d["scan_id"]))


def scan_resumed(conn, rec: Record) -> None:
    """The resumed units start over; the completed ones keep what they counted.

    The run is dispatched again: its start time is the resume's (seed 003's "new dispatch
    timestamp"). A resume with no unit left to run is followed at once by scan.finished.
    """
    d = rec.event["data"]
    marks = ",".join("?" * len(d["unit_ids"]))
    undone = conn.execute(f"SELECT COALESCE(SUM(rules_done), 0) FROM rm_units WHERE unit_id IN ({marks})",
                          d["unit_ids"]).fetchone()[0]
    conn.execute(f"UPDATE rm_units SET status = 'pending', rules_done = 0, violation_count = 0, error = NULL,"
                 f" started_at = NULL, finished_at = NULL, records_processed = 0 WHERE unit_id IN ({marks})",
                 d["unit_ids"])
    conn.execute(f"UPDATE rm_unit_monitors SET stage = 'pending', duration_ms = NULL, error = NULL, anomalies = 0"
                 f" WHERE unit_id IN ({marks})", d["unit_ids"])
    conn.execute(
        "UPDATE rm_scans SET status = 'running', started_at = ?, finished_at = NULL, finalized = 0, error = NULL,"
        " violation_count = NULL, rules_processed = NULL, rule_evals_done = rule_evals_done - ?,"
        " record_count = (SELECT COALESCE(SUM(records_processed), 0) FROM rm_units"
        "                 WHERE scan_id = ? AND status = 'completed') WHERE scan_id = ?",
        (d["resumed_at"], undone, d["scan_id"], d["scan_id"]))


def scan_deleted(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute("UPDATE rm_scans SET deleted_at = ? WHERE scan_id = ?", (d["deleted_at"], d["scan_id"]))


def violation_status_changed(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute(
        "INSERT INTO rm_violation_status (violation_id, scan_id, status, changed_at, changed_by) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(violation_id) DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at,"
        " changed_by = excluded.changed_by",
        (d["violation_id"], d["scan_id"], d["status"], d["changed_at"], d["changed_by"]))
    conn.execute("UPDATE rm_scans SET compliance_score = ? WHERE scan_id = ?", (d["compliance_score"], d["scan_id"]))
    action = "violation_reopened" if d["status"] == "open" else f"violation_{d['status']}"
    _score_entry(conn, rec, d["compliance_score"], d["changed_at"], action, d["violation_id"])


def _score_entry(conn, rec: Record, score: float, timestamp: str, action: str, violation_id: str | None) -> None:
    d = rec.event["data"]
    conn.execute("INSERT INTO rm_score_history (event_id, scan_id, position, score, timestamp, action, violation_id)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING",
                 (rec.event["id"], d["scan_id"], rec.offset, score, timestamp, action, violation_id))


def violations(conn, recs: list[Record]) -> set[str]:
    """Insert a batch of violations and count the new ones; returns the scans that got some."""
    per_scan: dict[str, list[tuple]] = {}
    for rec in recs:
        d = rec.event["data"]
        per_scan.setdefault(d["scan_id"], []).append((
            d["violation_id"], d["scan_id"], d["rule_id"], d["rule_name"], d["rule_type"], d["severity"],
            d["account"], d["record_index"], d["record_key"], d["value"], d["window"], d["signature"],
            rec.event["time"], d.get("container_id"), _json(d["observed"]) if d.get("observed") else None))
    for scan_id, rows in per_scan.items():
        inserted = conn.executemany(
            "INSERT INTO rm_violations (violation_id, scan_id, rule_id, rule_name, rule_type, severity, account,"
            " record_index, record_key, value, window, signature, detected_at, container_id, observed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(violation_id) DO NOTHING", rows).rowcount
        # incremented by what was really inserted, so a re-delivered violation counts once
        conn.execute("UPDATE rm_scans SET violations_seen = violations_seen + ? WHERE scan_id = ?", (inserted, scan_id))
    return set(per_scan)


LIFECYCLE = {
    c.SCAN_REQUESTED: scan_requested,
    c.SCAN_STARTED: scan_started,
    c.UNIT_PROGRESSED: unit_progressed,
    c.UNIT_COMPLETED: unit_finished,
    c.UNIT_FAILED: unit_finished,
    c.SCAN_FINISHED: scan_finished,
    c.SCAN_ABORTED: scan_aborted,
    c.SCAN_RESUMED: scan_resumed,
    c.SCAN_DELETED: scan_deleted,
    c.VIOLATION_STATUS_CHANGED: violation_status_changed,
}


def apply_batch(conn, records: list[Record]) -> None:
    """Apply records (already inside a transaction), then finalize the scans they completed."""
    touched: set[str] = set()
    pending_violations: list[Record] = []
    for rec in records:
        if rec.type == c.VIOLATION_DETECTED:
            pending_violations.append(rec)
            continue
        if rec.type == c.RUN_SCAN:
            run_scan(conn, rec)
            continue
        apply = LIFECYCLE.get(rec.type)
        if apply is not None and _first_time(conn, rec.event["id"]):
            apply(conn, rec)
            touched.add(rec.event["subject"])
    touched |= violations(conn, pending_violations)
    for scan_id in sorted(touched):
        finalize(conn, scan_id)
    _store_offsets(conn, records)


def finalize(conn, scan_id: str) -> None:
    """A finished scan whose violations have all arrived gets its delta; so may its successor.

    The delta's previous scan is the latest finalized completed scan of the same policy
    created before this one. Finalizing a scan may change the successor's previous scan,
    so it is recomputed too: the end state is the same in whatever order scans finish.
    """
    scan = conn.execute("SELECT * FROM rm_scans WHERE scan_id = ?", (scan_id,)).fetchone()
    if (scan is None or scan["finalized"] or scan["status"] not in TERMINAL
            or scan["violation_count"] is None or scan["violations_seen"] < scan["violation_count"]):
        return
    conn.execute("UPDATE rm_scans SET finalized = 1 WHERE scan_id = ?", (scan_id,))
    if scan["status"] != "completed" or scan["kind"] != "compliance":
        return
    _compute_delta(conn, scan)
    successor = conn.execute(
        "SELECT * FROM rm_scans WHERE workspace_id = ? AND policy_id = ? AND kind = 'compliance' AND finalized = 1"
        " AND status = 'completed' AND (created_at, scan_id) > (?, ?) ORDER BY created_at, scan_id LIMIT 1",
        (scan["workspace_id"], scan["policy_id"], scan["created_at"], scan_id)).fetchone()
    if successor is not None:
        _compute_delta(conn, successor)


def _compute_delta(conn, scan) -> None:
    previous = conn.execute(
        "SELECT scan_id, violation_count FROM rm_scans WHERE workspace_id = ? AND policy_id = ? AND kind = 'compliance'"
        " AND finalized = 1 AND status = 'completed' AND (created_at, scan_id) < (?, ?)"
        " ORDER BY created_at DESC, scan_id DESC LIMIT 1",
        (scan["workspace_id"], scan["policy_id"], scan["created_at"], scan["scan_id"])).fetchone()
    if previous is None:
        value = None
    else:
        current = _signatures(conn, scan["scan_id"])
        value = _json(deltas.compute(current, _signatures(conn, previous["scan_id"]), previous["scan_id"],
                                     previous["violation_count"]))
    conn.execute("UPDATE rm_scans SET delta = ? WHERE scan_id = ?", (value, scan["scan_id"]))


def _signatures(conn, scan_id: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT DISTINCT signature FROM rm_violations WHERE scan_id = ?", (scan_id,))}


def _store_offsets(conn, records: list[Record]) -> None:
    latest: dict[tuple[str, int], int] = {}
    for rec in records:
        key = (rec.topic, rec.partition)
        latest[key] = max(latest.get(key, -1), rec.offset)
    conn.executemany(
        "INSERT INTO projector_offsets (topic, partition, next_offset) VALUES (?, ?, ?)"
        " ON CONFLICT(topic, partition) DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
        [(t, p, o + 1) for (t, p), o in latest.items()])
