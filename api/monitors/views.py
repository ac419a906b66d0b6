"""Read models shaped into seed 000's JSON: executions and per-asset scan status."""
from __future__ import annotations

from api.scans import reads

EXECUTION_STATUS = {"queued": "running", "running": "running", "completed": "finished",
                    "partial_failure": "finished", "failed": "failed", "aborted": "failed"}
STAGES = ("completed", "running", "failed", "pending")


def execution_view(row) -> dict:
    return {"executionId": row["scan_id"], "status": EXECUTION_STATUS[row["status"]],
            "startedAt": row["started_at"] or row["created_at"], "finishedAt": row["finished_at"]}


def pending_execution_view(pending: dict) -> dict:
    """Accepted by the API, not yet seen by the projector."""
    return {"executionId": pending["scan_id"], "status": "running", "startedAt": pending["created_at"],
            "finishedAt": None}


def run_status(unit, monitors: list[dict]) -> str:
    """An asset's run: running until its unit reports; a failed unit is failed only if no monitor ran."""
    if unit["status"] in ("pending", "running"):
        return "running"
    if unit["status"] == "completed":
        return "completed"
    return "failed" if all(m["stage"] == "failed" for m in monitors) else "partial_failure"


def run_view(unit, monitors: list[dict]) -> dict:
    progress = {"total": len(monitors), **dict.fromkeys(STAGES, 0)}
    for m in monitors:
        progress[m["stage"]] += 1
    return {
        "jobId": unit["unit_id"],
        "status": run_status(unit, monitors),
        "startedAt": unit["started_at"] or unit["scan_started_at"],
        "finishedAt": unit["finished_at"],
        "progress": progress,
        "monitors": [{"monitorId": m["monitor_id"], "monitorName": m["monitor_name"], "stage": m["stage"],
                      "durationMs": m["duration_ms"], "error": m["error"]} for m in monitors],
    }


def assets_status(db, assets: list[dict]) -> list[dict]:
    current, last = reads.asset_runs(db, [a["id"] for a in assets])
    units = [*current.values(), *last.values()]
    monitors = reads.unit_monitors(db, [u["unit_id"] for u in units])
    out = []
    for a in assets:
        cur, prev = current.get(a["id"]), last.get(a["id"])
        cur_view = run_view(cur, monitors.get(cur["unit_id"], [])) if cur else None
        last_view = run_view(prev, monitors.get(prev["unit_id"], [])) if prev else None
        out.append({
            "assetId": str(a["id"]),
            "assetName": a["name"],
            "status": "running" if cur_view else last_view["status"] if last_view else "idle",
            "lastCompletedAt": last_view["finishedAt"] if last_view else None,
            "currentRun": cur_view,
            "lastRun": last_view,
        })
    return out
