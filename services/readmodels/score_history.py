"""rm_score_history: a scan's compliance score over time, at its finish and at every status change.

An entry's position is its event's offset on the scan's partition, so the history is in
ledger order on live and on replay alike.
"""
from __future__ import annotations

from services.domain import contracts as c
from services.readmodels.record import Record

TABLES = ("rm_score_history",)


def _entry(conn, rec: Record, score: float, timestamp: str, action: str, violation_id: str | None) -> None:
    conn.execute(
        "INSERT INTO rm_score_history (event_id, scan_id, position, score, timestamp, action, violation_id)"
        " VALUES (:event_id, :scan_id, :position, :score, :timestamp, :action, :violation_id)"
        " ON CONFLICT(event_id) DO NOTHING",
        {"event_id": rec.event["id"], "scan_id": rec.event["data"]["scan_id"], "position": rec.offset,
         "score": score, "timestamp": timestamp, "action": action, "violation_id": violation_id})


def scan_finished(conn, rec: Record) -> None:
    d = rec.event["data"]
    _entry(conn, rec, d["compliance_score"], d["finished_at"], f"scan_{d['status']}", None)


def violation_status_changed(conn, rec: Record) -> None:
    d = rec.event["data"]
    action = "violation_reopened" if d["status"] == "open" else f"violation_{d['status']}"
    _entry(conn, rec, d["compliance_score"], d["changed_at"], action, d["violation_id"])


HANDLERS = {
    c.SCAN_FINISHED: scan_finished,
    c.VIOLATION_STATUS_CHANGED: violation_status_changed,
}
