"""rm_scans: one row per scan, its status and counters, and its delta once finalized.

Its counters follow what the other read models are about to add, so for an event they
share this module's handler runs before theirs (services.readmodels.apply.READ_MODELS): on
scan.unit.progressed it reads the unit's rules_done in rm_units before services.readmodels.units
raises it, and on scan.resumed the units before they are reset. Violations add themselves to
violations_seen as they are inserted (services.readmodels.violations); scan.requested counts the
violations that arrived first (they travel on another topic).
"""
from __future__ import annotations

from services.domain import contracts as c
from services.domain import delta as deltas
from services.domain.kinds import delta_kinds, kind_of
from services.domain.vocabulary import FINISHED
from services.readmodels.record import Record, to_json

TABLES = ("rm_scans",)


def scan_requested(conn, rec: Record) -> None:
    d = rec.event["data"]
    policy, upload, mapping = d.get("policy") or {}, d.get("upload") or {}, d.get("mapping") or {}
    store = d.get("datastore") or {}
    conn.execute(
        "INSERT INTO rm_scans (scan_id, workspace_id, kind, status, policy_id, policy_name, upload_id, mapping_id,"
        " audit_id, audit_name, mapping_config, temporal_scale, requested_by, rerun_of, pii_findings, record_total,"
        " rules_total, created_at, operation_id, datastore_id, datastore_name, request)"
        " VALUES (:scan_id, :workspace_id, :kind, 'queued', :policy_id, :policy_name, :upload_id, :mapping_id,"
        " :audit_id, :audit_name, :mapping_config, :temporal_scale, :requested_by, :rerun_of, :pii_findings,"
        " :record_total, :rules_total, :created_at, :operation_id, :datastore_id, :datastore_name, :request)"
        " ON CONFLICT(scan_id) DO NOTHING",
        {"scan_id": d["scan_id"], "workspace_id": d["workspace_id"], "kind": d["kind"],
         "policy_id": policy.get("id"), "policy_name": policy.get("name"), "upload_id": upload.get("id"),
         "mapping_id": mapping.get("id"), "audit_id": d.get("audit_id"), "audit_name": d.get("audit_name"),
         "mapping_config": to_json(mapping["mapping"]) if mapping else None,
         "temporal_scale": mapping.get("temporal_scale"), "requested_by": d["requested_by"],
         "rerun_of": d.get("rerun_of"), "pii_findings": to_json(upload.get("pii_findings", [])),
         "record_total": upload.get("record_count", 0), "rules_total": len(kind_of(d).checks(d)),
         "created_at": d["requested_at"],
         "operation_id": d.get("operation_id"), "datastore_id": store.get("id"), "datastore_name": store.get("name"),
         "request": to_json(d)})
    # violations travel on another topic and may have arrived first
    conn.execute("UPDATE rm_scans SET violations_seen = (SELECT COUNT(*) FROM rm_violations WHERE scan_id = :scan_id)"
                 " WHERE scan_id = :scan_id", d)


def scan_started(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute(
        "UPDATE rm_scans SET status = 'running', started_at = :started_at, units_total = :units_total,"
        " rule_evals_total = :rule_evals_total WHERE scan_id = :scan_id AND status = 'queued'",
        {"scan_id": d["scan_id"], "started_at": d["started_at"], "units_total": len(d["units"]),
         "rule_evals_total": sum(len(u["rule_ids"]) for u in d["units"])})


def unit_progressed(conn, rec: Record) -> None:
    """The rules the unit has newly done (read before services.readmodels.units records them)."""
    d = rec.event["data"]
    row = conn.execute("SELECT rules_done FROM rm_units WHERE unit_id = :unit_id", d).fetchone()
    if row is None or row["rules_done"] >= d["rules_done"]:
        return
    conn.execute("UPDATE rm_scans SET rule_evals_done = rule_evals_done + :more WHERE scan_id = :scan_id",
                 {"more": d["rules_done"] - row["rules_done"], "scan_id": d["scan_id"]})


def unit_completed(conn, rec: Record) -> None:
    conn.execute("UPDATE rm_scans SET record_count = record_count + :record_count WHERE scan_id = :scan_id",
                 rec.event["data"])


def scan_finished(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute(
        "UPDATE rm_scans SET status = :status, record_count = :record_count, rules_processed = :rules_processed,"
        " violation_count = :violation_count, compliance_score = :compliance_score, error = :error,"
        " finished_at = :finished_at, unevaluated = :unevaluated WHERE scan_id = :scan_id",
        {**d, "unevaluated": to_json(d["unevaluated"]) if d.get("unevaluated") else None})


def scan_aborted(conn, rec: Record) -> None:
    conn.execute("UPDATE rm_scans SET status = 'aborted', finished_at = :aborted_at,"
                 " violation_count = :violation_count, error = NULL WHERE scan_id = :scan_id", rec.event["data"])


def scan_resumed(conn, rec: Record) -> None:
    """The resumed units start over; the completed ones keep what they counted.

    The run is dispatched again: its start time is the resume's (seed 003's "new dispatch
    timestamp"). A resume with no unit left to run is followed at once by scan.finished.
    Read before services.readmodels.units resets the resumed units: their rules done are taken off,
    and the records are those of the completed units that are not resumed.
    """
    d = rec.event["data"]
    conn.execute(
        "UPDATE rm_scans SET status = 'running', started_at = :resumed_at, finished_at = NULL, finalized = 0,"
        " error = NULL, violation_count = NULL, rules_processed = NULL,"
        " rule_evals_done = rule_evals_done - (SELECT COALESCE(SUM(rules_done), 0) FROM rm_units"
        "                                      WHERE unit_id IN (SELECT value FROM json_each(:unit_ids))),"
        " record_count = (SELECT COALESCE(SUM(records_processed), 0) FROM rm_units WHERE scan_id = :scan_id"
        "                 AND status = 'completed' AND unit_id NOT IN (SELECT value FROM json_each(:unit_ids)))"
        " WHERE scan_id = :scan_id",
        {"scan_id": d["scan_id"], "resumed_at": d["resumed_at"], "unit_ids": to_json(d["unit_ids"])})


def scan_deleted(conn, rec: Record) -> None:
    conn.execute("UPDATE rm_scans SET deleted_at = :deleted_at WHERE scan_id = :scan_id", rec.event["data"])


def violation_status_changed(conn, rec: Record) -> None:
    conn.execute("UPDATE rm_scans SET compliance_score = :compliance_score WHERE scan_id = :scan_id",
                 rec.event["data"])


def finalize(conn, scan_id: str) -> None:
    """A finished scan whose violations have all arrived gets its delta; so may its successor.

    Only the kinds with a delta (services.domain.kinds: compliance) get one. The delta's previous
    scan is the latest finalized completed scan of the same kind and policy created before
    this one. Finalizing a scan may change the successor's previous scan,
    so it is recomputed too: the end state is the same in whatever order scans finish.
    """
    scan = conn.execute("SELECT * FROM rm_scans WHERE scan_id = :scan_id", {"scan_id": scan_id}).fetchone()
    if (scan is None or scan["finalized"] or scan["status"] not in FINISHED
            or scan["violation_count"] is None or _seen(conn, scan) < scan["violation_count"]):
        return
    conn.execute("UPDATE rm_scans SET finalized = 1 WHERE scan_id = :scan_id", {"scan_id": scan_id})
    if scan["status"] != "completed" or scan["kind"] not in delta_kinds():
        return
    _compute_delta(conn, scan)
    successor = conn.execute(
        "SELECT * FROM rm_scans WHERE workspace_id = :workspace_id AND policy_id = :policy_id AND kind = :kind"
        " AND finalized = 1 AND status = 'completed' AND (created_at, scan_id) > (:created_at, :scan_id)"
        " ORDER BY created_at, scan_id LIMIT 1", _same_policy(scan)).fetchone()
    if successor is not None:
        _compute_delta(conn, successor)


def _seen(conn, scan) -> int:
    """The violations of a finished scan in the read models. A sensitive-data scan's violation_count
    counts its findings (its chunks report them by detector), which rm_sensitive_findings holds once
    each (services.readmodels.sensitive_scans); counted only here, once the scan has finished."""
    findings = conn.execute("SELECT COUNT(*) FROM rm_sensitive_findings WHERE scan_id = :scan_id",
                            {"scan_id": scan["scan_id"]}).fetchone()[0]
    return scan["violations_seen"] + findings


def _same_policy(scan) -> dict:
    return {k: scan[k] for k in ("workspace_id", "policy_id", "kind", "created_at", "scan_id")}


def _compute_delta(conn, scan) -> None:
    previous = conn.execute(
        "SELECT scan_id, violation_count FROM rm_scans WHERE workspace_id = :workspace_id AND policy_id = :policy_id"
        " AND kind = :kind AND finalized = 1 AND status = 'completed'"
        " AND (created_at, scan_id) < (:created_at, :scan_id) ORDER BY created_at DESC, scan_id DESC LIMIT 1",
        _same_policy(scan)).fetchone()
    if previous is None:
        value = None
    else:
        current = _signatures(conn, scan["scan_id"])
        value = to_json(deltas.compute(current, _signatures(conn, previous["scan_id"]), previous["scan_id"],
                                       previous["violation_count"]))
    conn.execute("UPDATE rm_scans SET delta = :delta WHERE scan_id = :scan_id",
                 {"delta": value, "scan_id": scan["scan_id"]})


def _signatures(conn, scan_id: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT DISTINCT signature FROM rm_violations WHERE scan_id = :scan_id",
                                       {"scan_id": scan_id})}


HANDLERS = {
    c.SCAN_REQUESTED: scan_requested,
    c.SCAN_STARTED: scan_started,
    c.UNIT_PROGRESSED: unit_progressed,
    c.UNIT_COMPLETED: unit_completed,  # a failed unit's records are not counted
    c.SCAN_FINISHED: scan_finished,
    c.SCAN_ABORTED: scan_aborted,
    c.SCAN_RESUMED: scan_resumed,
    c.SCAN_DELETED: scan_deleted,
    c.VIOLATION_STATUS_CHANGED: violation_status_changed,
}
