"""Sensitive-data scans (seed 004) on the read side: the queries and the views of api/sensitive/routes.py.

A scan's status is rm_scans' (the lifecycle's), shown in the seed's words: partial_failure is
`partial`, aborted is `cancelled`; a finished scan shows `running` until every finding it
counted is in rm_sensitive_findings (they travel on their own topic), so a finished scan's
findings are always complete. Coverage and progress are counts over rm_sensitive_files,
computed by services.domain.kinds.sensitive.coverage.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson

from services.domain.kinds.sensitive import coverage
from services.domain.vocabulary import FINISHED, sql_list

SEED_STATUS = {"queued": "queued", "running": "running", "completed": "completed", "partial_failure": "partial",
               "failed": "failed", "aborted": "cancelled"}
LEDGER_STATUS = {seed: ledger for ledger, seed in SEED_STATUS.items()}
SEED_STATUSES = tuple(SEED_STATUS.values())

FINDINGS_SEEN = "(SELECT COUNT(*) FROM rm_sensitive_findings f WHERE f.scan_id = s.scan_id)"
# A finalized scan (services.readmodels.scans.finalize: every finding it counted is in) is shown as it is without
# counting its findings, which on a scan of a million findings cost every read of it, a page of findings too.
SHOWN = (f"(CASE WHEN s.status IN {sql_list(FINISHED)} AND s.finalized = 0"
         f" AND {FINDINGS_SEEN} < COALESCE(s.violation_count, 0) THEN 'running' ELSE s.status END)")
SELECT = (f"SELECT x.*, s.status AS ledger_status, {SHOWN} AS shown_status, s.started_at, s.finished_at,"
          " s.violation_count, s.error, s.request FROM rm_sensitive_scans x JOIN rm_scans s ON s.scan_id = x.scan_id")


def scan_row(db, workspace_id: str, scan_id: str):
    return db.execute(f"{SELECT} WHERE x.scan_id = ? AND x.workspace_id = ?", (scan_id, workspace_id)).fetchone()


def list_scans(db, workspace_id: str, *, connector: str | None, status: str | None, since: str | None, limit: int,
               after: list | None) -> list:
    """Newest first by (created_at, scan_id): a cursor is the last key shown, so scans that arrive
    later (newer) never shift a page that follows."""
    where, args = ["x.workspace_id = ?"], [workspace_id]
    if connector:
        where.append("EXISTS (SELECT 1 FROM json_each(x.connectors) WHERE value = ?)")
        args.append(connector)
    if status:
        where.append(f"{SHOWN} = ?")
        args.append(LEDGER_STATUS[status])
    if since:
        where.append("x.created_at >= ?")
        args.append(since)
    if after:
        where.append("(x.created_at, x.scan_id) < (?, ?)")
        args += after
    sql = f"{SELECT} WHERE {' AND '.join(where)} ORDER BY x.created_at DESC, x.scan_id DESC LIMIT ?"
    return db.execute(sql, [*args, limit]).fetchall()


def file_counts(db, scan_id: str) -> dict:
    """{scanned, skipped, failed, unchanged, timeout}: unchanged (an incremental scan's) and timeout (past
    the scan's deadline, never read) are skipped files too."""
    counts = {"scanned": 0, "skipped": 0, "failed": 0, "unchanged": 0, "timeout": 0}
    for r in db.execute("SELECT status, reason, COUNT(*) AS n FROM rm_sensitive_files WHERE scan_id = ?"
                        " GROUP BY status, reason", (scan_id,)):
        counts[r["status"]] += r["n"]
        if r["status"] == "skipped" and r["reason"] in ("unchanged", "timeout"):
            counts[r["reason"]] += r["n"]
    return counts


def watermark(db, workspace_id: str, connector_id: str) -> tuple[str | None, dict[str, str]]:
    """An incremental scan's baseline for a connector: its newest completed or partial scan's id and the
    versions of the files that scan covered (scanned, or unchanged since the scan before); the files it
    did not cover (skipped, failed, new since) are scanned. A partial baseline counts: one unsupported
    file makes a scan partial, and ignoring it made every later incremental scan a full one. All of a
    finished scan's file outcomes are projected: they precede its scan.finished on its partition."""
    last = db.execute(
        "SELECT x.scan_id FROM rm_sensitive_scans x JOIN rm_scans s ON s.scan_id = x.scan_id"
        " WHERE x.workspace_id = ? AND s.status IN ('completed', 'partial_failure')"
        " AND EXISTS (SELECT 1 FROM json_each(x.connectors) WHERE value = ?)"
        " ORDER BY x.created_at DESC, x.scan_id DESC LIMIT 1", (workspace_id, connector_id)).fetchone()
    if last is None:
        return None, {}
    rows = db.execute("SELECT name, version FROM rm_sensitive_files WHERE scan_id = ? AND connector_id = ?"
                      " AND (status = 'scanned' OR (status = 'skipped' AND reason = 'unchanged'))",
                      (last["scan_id"], connector_id))
    return last["scan_id"], {r["name"]: r["version"] for r in rows}


def findings_count(db, scan_id: str) -> int:
    """The findings of the files counted so far, as each file's outcome says: exact as soon as the outcome
    is in (the findings themselves travel on their own topic and may still be on their way to the list)."""
    return db.execute("SELECT COALESCE(SUM(findings), 0) FROM rm_sensitive_files WHERE scan_id = ?",
                      (scan_id,)).fetchone()[0]


def chunks(db, scan_id: str) -> list:
    return db.execute(
        "SELECT k.*, u.status AS unit_status, u.started_at, u.finished_at, l.worker_id AS leased_by, l.claims,"
        " (SELECT COUNT(*) FROM rm_sensitive_files f WHERE f.unit_id = k.unit_id) AS files_processed,"
        " (SELECT COALESCE(SUM(findings), 0) FROM rm_sensitive_files f WHERE f.unit_id = k.unit_id) AS findings"
        " FROM rm_sensitive_chunks k LEFT JOIN rm_units u ON u.unit_id = k.unit_id"
        " LEFT JOIN chunk_leases l ON l.unit_id = k.unit_id WHERE k.scan_id = ?"
        " ORDER BY k.idx", (scan_id,)).fetchall()


def findings(db, scan_id: str, limit: int, after: list | None, filters: dict | None = None) -> list:
    """A page in (connector, file, finding id) order, on the index of that order. `filters`: detector,
    connector, file (a prefix), min_confidence, llm_verdict ("none": findings not sent for review)."""
    where, args = ["scan_id = ?"], [scan_id]
    filters = filters or {}
    for key, column in (("detector", "detector"), ("connector", "connector_id")):
        if filters.get(key) is not None:
            where.append(f"{column} = ?")
            args.append(filters[key])
    if filters.get("file") is not None:  # a prefix, as a range on the index (no LIKE and its escapes)
        where.append("file >= ? AND file < ?")
        args += [filters["file"], filters["file"] + "\U0010ffff"]
    if filters.get("min_confidence") is not None:
        where.append("confidence >= ?")
        args.append(filters["min_confidence"])
    if filters.get("llm_verdict") is not None:
        where.append("llm_verdict IS NULL" if filters["llm_verdict"] == "none" else "llm_verdict = ?")
        args += [] if filters["llm_verdict"] == "none" else [filters["llm_verdict"]]
    if after:
        where.append("(connector_id, file, finding_id) > (?, ?, ?)")
        args += after
    return db.execute(f"SELECT * FROM rm_sensitive_findings WHERE {' AND '.join(where)}"
                      " ORDER BY connector_id, file, finding_id LIMIT ?", [*args, limit]).fetchall()


def files(db, scan_id: str, limit: int, after: list | None, filters: dict) -> list:
    """A page of the scan's file outcomes in (connector, name) order: the primary key's."""
    where, args = ["scan_id = ?"], [scan_id]
    for key, column in (("status", "status"), ("reason", "reason"), ("connector", "connector_id")):
        if filters.get(key) is not None:
            where.append(f"{column} = ?")
            args.append(filters[key])
    if after:
        where.append("(connector_id, name) > (?, ?)")
        args += after
    return db.execute(f"SELECT * FROM rm_sensitive_files WHERE {' AND '.join(where)} ORDER BY connector_id, name"
                      " LIMIT ?", [*args, limit]).fetchall()


def file_view(row) -> dict:
    return {"connector_id": row["connector_id"], "file": row["name"], "status": row["status"],
            "reason": row["reason"], "size": row["size"], "findings_count": row["findings"],
            # every value found, over max_findings_per_file too (an outcome from before the cap: its findings)
            "occurrences": row["findings"] if row["occurrences"] is None else row["occurrences"],
            "worker_id": f"worker-{int(row['unit_id'].rsplit('.c', 1)[1]) + 1:03d}", "processed_at": row["at"]}


def occurrences_count(db, scan_id: str) -> int:
    return db.execute("SELECT COALESCE(SUM(COALESCE(occurrences, findings)), 0) FROM rm_sensitive_files"
                      " WHERE scan_id = ?", (scan_id,)).fetchone()[0]


def findings_by_detector(db, scan_id: str) -> dict[str, int]:
    return {r[0]: r[1] for r in db.execute("SELECT detector, COUNT(*) FROM rm_sensitive_findings WHERE scan_id = ?"
                                           " GROUP BY detector ORDER BY detector", (scan_id,))}


def files_by_reason(db, scan_id: str) -> dict[str, dict[str, int]]:
    """{"skipped": {reason: n}, "failed": {reason: n}}: why the files not scanned were not."""
    out: dict[str, dict[str, int]] = {"skipped": {}, "failed": {}}
    for r in db.execute("SELECT status, COALESCE(reason, 'unknown'), COUNT(*) FROM rm_sensitive_files"
                        " WHERE scan_id = ? AND status != 'scanned' GROUP BY status, reason ORDER BY 1, 2",
                        (scan_id,)):
        out[r[0]][r[1]] = r[2]
    return out


# --- views ---

def _seconds(start: str | None, end: str | None, now: datetime) -> int | None:
    if not start:
        return None
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    t1 = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else now
    return max(0, round((t1 - t0).total_seconds()))


def worker_status(chunk, scan_status: str) -> str:
    """A chunk's worker as seed 004 shows it. A cancel terminates the active workers: a chunk whose worker
    read the cancel too late and finished anyway is cancelled too, as its files after the cancel are not
    counted (services.readmodels.sensitive_scans). Its outcomes precede its result on the scan's partition,
    so a chunk that finished before the cancel has every file counted, and stays completed."""
    status = chunk["unit_status"] or "pending"
    if status == "completed" and scan_status == "aborted" and chunk["files_processed"] < chunk["file_count"]:
        return "cancelled"
    if status in ("completed", "failed"):
        return status
    if scan_status == "aborted":
        return "cancelled"
    if scan_status in FINISHED:
        return "failed"
    return "queued" if status == "pending" else "running"


def worker_view(chunk, scan_status: str) -> dict:
    status = worker_status(chunk, scan_status)
    n = chunk["file_count"]
    out = {"worker_id": f"worker-{chunk['idx'] + 1:03d}", "status": status,
           "chunk": {"start_index": chunk["start_index"], "end_index": chunk["end_index"], "file_count": n},
           "progress": {"files_processed": chunk["files_processed"], "findings_count": chunk["findings"],
                        "percent_complete": math.floor(100 * chunk["files_processed"] / n) if n else 100},
           "started_at": chunk["started_at"]}
    if status in ("completed", "failed"):
        out["completed_at"] = chunk["finished_at"]
    if chunk["leased_by"] is not None:  # a BYOC scan's chunk: the external worker holding it, and its claims
        out["external_worker"] = {"id": chunk["leased_by"], "claims": chunk["claims"]}
    return out


def scan_view(db, row, now: datetime | None = None) -> dict:
    """GET /api/v1/scans/:id: status, progress, the coverage block, workers and timestamps."""
    now = now or datetime.now(UTC)
    scan_id, shown = row["scan_id"], row["shown_status"]
    files = file_counts(db, scan_id)
    timed_out = files.pop("timeout")
    found = findings_count(db, scan_id)
    total = row["total_enumerated"]
    # a file skipped at the deadline was never reached: it is not processed (a timed-out scan is not 100 %)
    processed = files["scanned"] + files["skipped"] + files["failed"] - timed_out
    finished = shown in FINISHED
    elapsed = _seconds(row["started_at"], row["finished_at"] if finished else None, now)
    if finished:
        remaining = 0
    elif processed and elapsed is not None:
        remaining = round(elapsed * (total - processed) / processed)
    else:
        remaining = None
    workers = [worker_status(k, row["ledger_status"]) for k in chunks(db, scan_id)]
    out = {
        "scan_id": scan_id,
        "status": SEED_STATUS[shown],
        "type": row["type"],
        "connectors": orjson.loads(row["connectors"]),
        "options": scan_options(orjson.loads(row["options"])),
        "progress": {"files_total": total, "files_processed": processed, "files_failed": files["failed"],
                     "findings_count": found,
                     "percent_complete": math.floor(100 * processed / total) if total else (100 if finished else 0),
                     "elapsed_seconds": elapsed or 0, "estimated_remaining_seconds": remaining},
        "coverage": coverage(target=row["coverage_target"], strategy=row["coverage_strategy"],
                             enumeration_status=row["enumeration_status"], enumerated=total, **files),
        "workers": {"total": len(workers), "active": sum(1 for w in workers if w in ("queued", "running")),
                    "completed": workers.count("completed"), "failed": workers.count("failed"),
                    "cancelled": workers.count("cancelled")},
        "findings_by_detector": findings_by_detector(db, scan_id),
        "occurrences_count": occurrences_count(db, scan_id),
        "files_by_reason": files_by_reason(db, scan_id),
        "message": _message(row, shown, files, timed_out),
        "created_at": row["created_at"],
        "started_at": row["started_at"],
    }
    if row["type"] == "incremental":  # which scan each connector's unchanged files were judged against (None: none)
        out["baseline_scans"] = baseline_scans(row)
    if finished:  # a cancelled scan too: when it settled (its cancelled_at says when it was asked)
        out["completed_at"] = row["finished_at"]
    if row["cancelled_at"] and shown == "aborted":
        out["cancelled_at"] = row["cancelled_at"]
    if row["error"]:
        out["error"] = row["error"]
    return out


def _message(row, shown: str, files: dict, timed_out: int) -> str | None:
    """What a user should know of a scan that did not simply complete: why it failed, what the timeout left."""
    parts = []
    if shown == "failed":
        parts.append(row["error"] or (f"No file could be read: {files['failed']} failed (GET …/files?status=failed"
                                      " says why)" if files["failed"] and not files["scanned"] else "The scan failed"))
    if timed_out:
        parts.append(f"The scan's timeout ({row_timeout(row)} minutes) passed with {timed_out} files not read")
    return "; ".join(parts) or None


def baseline_scans(row) -> dict[str, str | None]:
    recorded = (orjson.loads(row["request"]) if row["request"] else {}).get("baseline_scans") or {}
    return {cid: recorded.get(cid) for cid in orjson.loads(row["connectors"])}


def row_timeout(row) -> int:
    return orjson.loads(row["options"]).get("timeout_minutes", 120)


def scan_options(opts: dict) -> dict:
    """The options a scan runs with, as the request recorded them (llm_assist false for a scan from before it)."""
    return {"llm_assist": False, **opts}


def pending_view(request: dict) -> dict:
    """A scan accepted on the ledger that the coordinator has not taken up yet: queued, nothing counted."""
    opts = request["options"]
    incremental = request.get("type") == "incremental"
    return {"scan_id": request["scan_id"], "status": "queued", "type": request.get("type", "full"),
            "connectors": [s["id"] for s in request["connectors"]],
            **({"baseline_scans": {s["id"]: (request.get("baseline_scans") or {}).get(s["id"])
                                   for s in request["connectors"]}} if incremental else {}),
            "options": scan_options(opts),
            "progress": {"files_total": 0, "files_processed": 0, "files_failed": 0, "findings_count": 0,
                         "percent_complete": 0, "elapsed_seconds": 0, "estimated_remaining_seconds": None},
            "findings_by_detector": {}, "occurrences_count": 0, "files_by_reason": {"skipped": {}, "failed": {}},
            "message": None,
            "coverage": coverage(target=opts.get("coverage_target", 1.0),
                                 strategy=opts.get("coverage_strategy", "best_effort"),
                                 enumeration_status="in_progress", enumerated=0, scanned=0, skipped=0, failed=0),
            "workers": {"total": 0, "active": 0, "completed": 0, "failed": 0, "cancelled": 0},
            "created_at": request["requested_at"], "started_at": None}


def finding_view(row) -> dict:
    location = {"line": row["line"]} if row["line"] is not None else {"row": row["row"], "column": row["col"]}
    return {"finding_id": row["finding_id"], "connector_id": row["connector_id"], "file": row["file"],
            "location": location, "offset": {"start": row["start"], "end": row["end_"]},
            "detector": row["detector"], "family": row["family"], "confidence": row["confidence"],
            "masked_sample": row["masked"], "found_at": row["found_at"],
            # LLM Assist: null unless the scan asked for it and this finding was below the threshold
            "llm_verdict": row["llm_verdict"], "llm_confidence": row["llm_confidence"], "llm_model": row["llm_model"],
            # the detector's own, always: with no verdict it is the confidence itself
            "detector_confidence": row["confidence"] if row["detector_confidence"] is None
            else row["detector_confidence"]}
