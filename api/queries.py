"""Reads of the read models built by the projector, always scoped to one workspace."""
from __future__ import annotations

import math

import orjson

TERMINAL = ("completed", "partial_failure", "failed", "aborted")


def scan(db, workspace_id: str, scan_id: str):
    return db.execute("SELECT * FROM rm_scans WHERE scan_id = ? AND workspace_id = ?",
                      (scan_id, workspace_id)).fetchone()


def score_history(db, scan_id: str) -> list[dict]:
    rows = db.execute("SELECT score, timestamp, action, violation_id FROM rm_score_history WHERE scan_id = ?"
                      " ORDER BY position", (scan_id,))
    return [dict(r) for r in rows]


def is_settled(row) -> bool:
    """Finished on the ledger and every violation projected: results are final."""
    return row is not None and row["status"] in TERMINAL and bool(row["finalized"])


VIOLATION_COLUMNS = ("v.violation_id AS id, v.scan_id, v.rule_id, v.rule_name, v.rule_type, v.severity, v.account,"
                     " v.record_index, v.record_key, v.value, v.window, v.signature,"
                     " COALESCE(s.status, 'open') AS status, v.detected_at")


def violations_page(db, scan_id: str, page: int, size: int, rule_id: str | None, status: str | None,
                    severity: str | None) -> dict:
    where, args = ["v.scan_id = ?"], [scan_id]
    if rule_id:
        where.append("v.rule_id = ?")
        args.append(rule_id)
    if status:
        where.append("COALESCE(s.status, 'open') = ?")
        args.append(status)
    if severity:
        where.append("v.severity = ?")
        args.append(severity)
    clause = " AND ".join(where)
    base = f"FROM rm_violations v LEFT JOIN rm_violation_status s ON s.violation_id = v.violation_id WHERE {clause}"
    total = db.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
    rows = db.execute(f"SELECT {VIOLATION_COLUMNS} {base} ORDER BY v.rule_id, v.record_index, v.record_key"
                      " LIMIT ? OFFSET ?", [*args, size, (page - 1) * size])
    return {"items": [dict(r) for r in rows], "total": total, "page": page, "size": size,
            "pages": math.ceil(total / size) if total else 0}


def violation(db, workspace_id: str, violation_id: str):
    return db.execute(f"SELECT {VIOLATION_COLUMNS}, sc.finalized, sc.status AS scan_status FROM rm_violations v"
                      " JOIN rm_scans sc ON sc.scan_id = v.scan_id"
                      " LEFT JOIN rm_violation_status s ON s.violation_id = v.violation_id"
                      " WHERE v.violation_id = ? AND sc.workspace_id = ?", (violation_id, workspace_id)).fetchone()


def loads(value):
    return orjson.loads(value) if value else None


def asset_profile(db, container_id: int):
    return db.execute("SELECT columns, row_count, synced_at FROM rm_asset_profiles WHERE container_id = ?",
                      (container_id,)).fetchone()


def asset_runs(db, asset_ids: list[int]) -> tuple[dict, dict]:
    """Per asset, its monitor run in flight and its latest finished run (units of monitor scans).

    A unit left pending by an aborted scan is neither: it never ran.
    """
    if not asset_ids:
        return {}, {}
    marks = ",".join("?" * len(asset_ids))
    rows = db.execute(
        "SELECT * FROM (SELECT u.*, s.started_at AS scan_started_at,"
        " CASE WHEN u.status IN ('completed', 'failed') THEN 'last'"
        "      WHEN s.status IN ('queued', 'running') THEN 'current' END AS slot,"
        " ROW_NUMBER() OVER (PARTITION BY u.container_id,"
        "   CASE WHEN u.status IN ('completed', 'failed') THEN 'last'"
        "        WHEN s.status IN ('queued', 'running') THEN 'current' END"
        "   ORDER BY s.created_at DESC, s.scan_id DESC) AS rn"
        " FROM rm_units u JOIN rm_scans s ON s.scan_id = u.scan_id"
        f" WHERE s.kind = 'monitor' AND u.container_id IN ({marks})) WHERE rn = 1 AND slot IS NOT NULL",
        asset_ids).fetchall()
    current = {r["container_id"]: r for r in rows if r["slot"] == "current"}
    last = {r["container_id"]: r for r in rows if r["slot"] == "last"}
    return current, last


def unit_monitors(db, unit_ids: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    if not unit_ids:
        return out
    marks = ",".join("?" * len(unit_ids))
    for r in db.execute(f"SELECT * FROM rm_unit_monitors WHERE unit_id IN ({marks}) ORDER BY unit_id, position",
                        unit_ids):
        out.setdefault(r["unit_id"], []).append(dict(r))
    return out
