"""The SQL of a scan's history (rm_scan_history, services.readmodels.scan_history)."""
from __future__ import annotations

import orjson

from services.domain.envelope import iso

ORDER = ("logged_at", "topic", "offset")  # log order (services.readmodels.scan_history); a scan: one partition a topic


def scan_id_of_run(db, workspace_id: str, operation_id: int) -> str | None:
    """The scan of a run id (seed 003's integer ids), queued or taken up."""
    row = db.execute("SELECT scan_id FROM rm_scans WHERE workspace_id = ? AND operation_id = ?"
                     " UNION ALL SELECT scan_id FROM rm_scan_requests WHERE workspace_id = ? AND operation_id = ?"
                     " LIMIT 1", (workspace_id, operation_id, workspace_id, operation_id)).fetchone()
    return row["scan_id"] if row else None


def has_history(db, workspace_id: str, scan_id: str) -> bool:
    return db.execute("SELECT 1 FROM rm_scan_history WHERE scan_id = ? AND workspace_id = ? LIMIT 1",
                      (scan_id, workspace_id)).fetchone() is not None


def page(db, workspace_id: str, scan_id: str, limit: int, after: list | None, types: list[str]) -> list:
    sql = ["SELECT * FROM rm_scan_history WHERE scan_id = ? AND workspace_id = ?"]
    args: list = [scan_id, workspace_id]
    if after is not None:
        sql.append('AND (logged_at, topic, "offset") > (?, ?, ?)')
        args += after
    if types:
        sql.append(f"AND type IN ({', '.join('?' * len(types))})")
        args += types
    sql.append('ORDER BY logged_at, topic, "offset" LIMIT ?')
    return db.execute(" ".join(sql), [*args, limit]).fetchall()


def item_view(row) -> dict:
    event = orjson.loads(row["event"])
    actor = None
    if row["actor_id"]:
        actor = {"token_id": row["actor_id"], "role": row["actor_role"]}
        if row["worker_id"]:
            actor["worker_id"] = row["worker_id"]
    return {"id": row["event_id"], "type": row["type"], "time": row["time"],
            "position": {"topic": row["topic"], "partition": row["partition"], "offset": row["offset"],
                         "logged_at": iso(row["logged_at"] / 1000)},
            "actor": actor, "source": row["source"], "causation_id": event.get("causationid"),
            "data": event.get("data")}
