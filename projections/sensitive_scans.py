"""Sensitive-data scans (seed 004): the scan's request and enumeration, its chunks, every file's
outcome and the findings.

rm_sensitive_scans holds what the lifecycle's rm_scans does not (connectors, options, the
enumeration); rm_sensitive_chunks each chunk's place in the enumeration (its status and
times are rm_units'); rm_sensitive_files one row per file outcome and rm_sensitive_findings
one per finding. Files and findings are idempotent on their primary keys (a file of a scan,
a finding id of a scan), so a retried chunk or a replay never counts one twice; the coverage
counters are counts over them (api/sensitive_queries.py).
"""
from __future__ import annotations

from projections.record import Record, to_json
from services.domain import contracts as c

TABLES = ("rm_sensitive_scans", "rm_sensitive_chunks", "rm_sensitive_offers", "rm_sensitive_files",
          "rm_sensitive_findings")


def scan_requested(conn, rec: Record) -> None:
    d = rec.event["data"]
    if d.get("kind") != "sensitive":
        return
    opts = d["options"]
    conn.execute(
        "INSERT INTO rm_sensitive_scans (scan_id, workspace_id, type, connectors, options, coverage_target,"
        " coverage_strategy, workers_requested, created_at)"
        " VALUES (:scan_id, :workspace_id, :type, :connectors, :options, :coverage_target, :coverage_strategy,"
        " :workers_requested, :created_at) ON CONFLICT(scan_id) DO NOTHING",
        {"scan_id": d["scan_id"], "workspace_id": d["workspace_id"], "type": d.get("type", "full"),
         "connectors": to_json([s["id"] for s in d["connectors"]]), "options": to_json(opts),
         "coverage_target": opts.get("coverage_target", 1.0),
         "coverage_strategy": opts.get("coverage_strategy", "best_effort"),
         "workers_requested": opts["max_workers"], "created_at": d["requested_at"]})


def scan_enumerated(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute(
        "UPDATE rm_sensitive_scans SET enumeration_status = :status, total_enumerated = :total_enumerated,"
        " listings = :listings, workers_requested = :workers_requested WHERE scan_id = :scan_id",
        {**d, "listings": to_json(d["connectors"])})


def scan_started(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.executemany(
        "INSERT INTO rm_sensitive_chunks (unit_id, scan_id, idx, start_index, end_index, file_count)"
        " VALUES (:unit_id, :scan_id, :idx, :start_index, :end_index, :file_count) ON CONFLICT(unit_id) DO NOTHING",
        [{"unit_id": u["unit_id"], "scan_id": d["scan_id"], "idx": u["index"], "start_index": u["start_index"],
          "end_index": u["end_index"], "file_count": u["record_count"]}
         for u in d["units"] if u.get("start_index") is not None])


def chunk_offered(conn, rec: Record) -> None:
    """A BYOC scan's chunk, waiting for an external worker to claim it (api/byoc_routes.py): the
    latest offer (a resume offers again with the next attempt) with its work, files by reference."""
    d = rec.event["data"]
    conn.execute(
        "INSERT INTO rm_sensitive_offers (unit_id, scan_id, idx, attempt, work) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(unit_id) DO UPDATE SET attempt = excluded.attempt, work = excluded.work"
        " WHERE excluded.attempt >= rm_sensitive_offers.attempt",
        (d["unit_id"], d["scan_id"], d["index"], d.get("attempt", 0), to_json(rec.event)))


def file_outcome(conn, rec: Record) -> None:
    conn.execute(
        "INSERT INTO rm_sensitive_files (scan_id, connector_id, name, unit_id, idx, status, reason, size, version,"
        " findings, at) VALUES (:scan_id, :connector_id, :name, :unit_id, :index, :status, :reason, :size, :version,"
        " :findings, :at) ON CONFLICT(scan_id, connector_id, name) DO NOTHING",
        {**rec.event["data"], "at": rec.event["time"]})


def finding_detected(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute(
        "INSERT INTO rm_sensitive_findings (scan_id, finding_id, connector_id, file, row, col, line, start, end_,"
        " detector, family, confidence, masked, found_at, llm_verdict, llm_confidence, llm_model, detector_confidence)"
        " VALUES (:scan_id, :finding_id, :connector_id, :file, :row, :column, :line, :start, :end, :detector,"
        " :family, :confidence, :masked, :found_at, :llm_verdict, :llm_confidence, :llm_model, :detector_confidence)"
        " ON CONFLICT(scan_id, finding_id) DO NOTHING",
        {"llm_verdict": None, "llm_confidence": None, "llm_model": None, "detector_confidence": None, **d,
         "found_at": rec.event["time"]})


def scan_aborted(conn, rec: Record) -> None:
    conn.execute("UPDATE rm_sensitive_scans SET cancelled_at = :aborted_at WHERE scan_id = :scan_id",
                 rec.event["data"])


def scan_resumed(conn, rec: Record) -> None:
    conn.execute("UPDATE rm_sensitive_scans SET cancelled_at = NULL WHERE scan_id = :scan_id", rec.event["data"])


HANDLERS = {
    c.SCAN_REQUESTED: scan_requested,
    c.SCAN_ENUMERATED: scan_enumerated,
    c.SCAN_STARTED: scan_started,
    c.CHUNK_OFFERED: chunk_offered,
    c.FILE_OUTCOME: file_outcome,
    c.FINDING_DETECTED: finding_detected,  # self-idempotent: its (scan, finding id) is the primary key
    c.SCAN_ABORTED: scan_aborted,
    c.SCAN_RESUMED: scan_resumed,
}
