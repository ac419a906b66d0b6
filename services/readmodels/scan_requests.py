"""rm_scan_requests: scans accepted on the ledger (a RunScan) that the coordinator has not taken up.

The table holds only what the coordinator has not requested yet: scan.requested removes the
scan, and a RunScan whose scan is already projected adds nothing, on live and on replay alike.
Reads rm_scans (owned by services.readmodels.scans) to know that.
"""
from __future__ import annotations

from services.domain import contracts as c
from services.domain.command_expiry import is_expired
from services.domain.kinds import kind_of
from services.readmodels.record import Record, to_json

TABLES = ("rm_scan_requests",)


def run_scan(conn, rec: Record) -> None:
    """A RunScan command on the ledger: the scan is pending (queued) until scan.requested.

    A command the broker appended after its expiry never happened (the API answered 503 for
    it and the coordinator drops it), so it is not shown either. Idempotent by itself (the
    scan id is the key), so it does not go through rm_processed_events.
    """
    if is_expired(rec.event, rec.timestamp):
        return
    d = rec.event["data"]
    conn.execute(
        "INSERT INTO rm_scan_requests (scan_id, workspace_id, kind, operation_id, request, created_at)"
        " SELECT :scan_id, :workspace_id, :kind, :operation_id, :request, :created_at"
        " WHERE NOT EXISTS (SELECT 1 FROM rm_scans WHERE scan_id = :scan_id) ON CONFLICT DO NOTHING",
        {"scan_id": d["scan_id"], "workspace_id": d["workspace_id"], "kind": kind_of(d).name,
         "operation_id": d.get("operation_id"), "request": to_json(d), "created_at": d["requested_at"]})


def scan_requested(conn, rec: Record) -> None:
    conn.execute("DELETE FROM rm_scan_requests WHERE scan_id = :scan_id", rec.event["data"])  # no longer pending


HANDLERS = {
    c.RUN_SCAN: run_scan,
    c.SCAN_REQUESTED: scan_requested,
}
