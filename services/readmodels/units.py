"""rm_units and rm_unit_monitors: a scan's units of work and, for a monitor scan, each
monitor's stage on its asset (the per-container breakdown of a run).

A unit copies its scan's kind and creation time from rm_scans (scan.requested came first on
the scan's partition), so an asset's latest runs are an index lookup however long its history.
"""
from __future__ import annotations

import orjson

from services.domain import contracts as c
from services.readmodels.record import Record, to_json

TABLES = ("rm_units", "rm_unit_monitors")


def scan_started(conn, rec: Record) -> None:
    d = rec.event["data"]
    scan = conn.execute("SELECT kind, created_at, request FROM rm_scans WHERE scan_id = :scan_id", d).fetchone()
    conn.executemany(
        "INSERT INTO rm_units (unit_id, scan_id, idx, record_count, rules_total, status, container_id,"
        " container_name, container_type, datastore_id, scan_kind, scan_created_at)"
        " VALUES (:unit_id, :scan_id, :idx, :record_count, :rules_total, 'pending', :container_id,"
        " :container_name, :container_type, :datastore_id, :scan_kind, :scan_created_at)"
        " ON CONFLICT(unit_id) DO NOTHING",
        [{"unit_id": u["unit_id"], "scan_id": d["scan_id"], "idx": u["index"], "record_count": u["record_count"],
          "rules_total": len(u["rule_ids"]), **_container(u.get("container")),
          "scan_kind": scan["kind"], "scan_created_at": scan["created_at"]} for u in d["units"]])
    names = _monitor_names(scan)
    conn.executemany(
        "INSERT INTO rm_unit_monitors (unit_id, monitor_id, position, monitor_name, stage)"
        " VALUES (:unit_id, :monitor_id, :position, :monitor_name, 'pending') ON CONFLICT DO NOTHING",
        [{"unit_id": u["unit_id"], "monitor_id": mid, "position": i, "monitor_name": names.get(mid, mid)}
         for u in d["units"] if u.get("container") for i, mid in enumerate(u["rule_ids"])])


def _container(container: dict | None) -> dict:
    if not container:
        return {"container_id": None, "container_name": None, "container_type": None, "datastore_id": None}
    return {"container_id": container["id"], "container_name": container["name"],
            "container_type": container["container_type"], "datastore_id": container["datastore_id"]}


def _monitor_names(scan) -> dict[str, str]:
    targets = (orjson.loads(scan["request"]).get("targets") or []) if scan and scan["request"] else []
    return {m["id"]: m["name"] for t in targets for m in t["monitors"]}


def _monitor_outcomes(conn, unit_id: str, outcomes: list[dict]) -> None:
    conn.executemany(
        "UPDATE rm_unit_monitors SET stage = :stage, duration_ms = :duration_ms, error = :error,"
        " anomalies = :anomalies WHERE unit_id = :unit_id AND monitor_id = :monitor_id",
        [{"stage": o["stage"], "duration_ms": o.get("duration_ms"), "error": o.get("error"),
          "anomalies": o.get("anomalies", 0), "unit_id": unit_id, "monitor_id": o["monitor_id"]} for o in outcomes])


def unit_progressed(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute("UPDATE rm_units SET started_at = COALESCE(started_at, :time),"
                 " status = CASE status WHEN 'pending' THEN 'running' ELSE status END WHERE unit_id = :unit_id",
                 {"time": rec.event["time"], "unit_id": d["unit_id"]})
    if d.get("monitor"):
        _monitor_outcomes(conn, d["unit_id"], [d["monitor"]])
    if d.get("rules_total") is not None and d["rules_done"] < d["rules_total"]:
        # monitors run in order: the next one is the one running now
        conn.execute("UPDATE rm_unit_monitors SET stage = 'running' WHERE unit_id = :unit_id"
                     " AND position = :rules_done AND stage = 'pending'", d)
    # only forward: a progress report re-delivered after a later one changes nothing
    conn.execute("UPDATE rm_units SET rules_done = :rules_done,"
                 " status = CASE status WHEN 'pending' THEN 'running' ELSE status END"
                 " WHERE unit_id = :unit_id AND rules_done < :rules_done",
                 {"rules_done": d["rules_done"], "unit_id": d["unit_id"]})


def unit_finished(conn, rec: Record) -> None:
    d = rec.event["data"]
    failed = rec.type == c.UNIT_FAILED
    conn.execute(
        "UPDATE rm_units SET status = :status, violation_count = :violation_count, error = :error,"
        " finished_at = :time, started_at = COALESCE(started_at, :time), records_processed = :records_processed"
        " WHERE unit_id = :unit_id",
        {"status": "failed" if failed else "completed",
         "violation_count": sum(d.get("violations_by_rule", {}).values()), "error": d.get("error"),
         "time": rec.event["time"], "records_processed": d.get("record_count", 0), "unit_id": d["unit_id"]})
    _monitor_outcomes(conn, d["unit_id"], d.get("monitors", []))


def scan_resumed(conn, rec: Record) -> None:
    """The resumed units start over (services.readmodels.scans has taken their share off the scan)."""
    unit_ids = {"unit_ids": to_json(rec.event["data"]["unit_ids"])}
    resumed = "unit_id IN (SELECT value FROM json_each(:unit_ids))"
    conn.execute("UPDATE rm_units SET status = 'pending', rules_done = 0, violation_count = 0, error = NULL,"
                 f" started_at = NULL, finished_at = NULL, records_processed = 0 WHERE {resumed}", unit_ids)
    conn.execute("UPDATE rm_unit_monitors SET stage = 'pending', duration_ms = NULL, error = NULL, anomalies = 0"
                 f" WHERE {resumed}", unit_ids)


HANDLERS = {
    c.SCAN_STARTED: scan_started,
    c.UNIT_PROGRESSED: unit_progressed,
    c.UNIT_COMPLETED: unit_finished,
    c.UNIT_FAILED: unit_finished,
    c.SCAN_RESUMED: scan_resumed,
}
