"""A sensitive-data scan (seed 004): every file of some connectors, split into chunks, through the detectors.

The coordinator enumerates the connectors (services.runners.sensitive) and records what it found
(scan.enumerated); the files are split into contiguous chunks, one per worker slot
(`workers_requested` = min(max_workers, files)), and each chunk is a unit of work. A chunk
reports every file's outcome (scanned, skipped or failed, with the reason) and the findings,
then its result. Its scan ends completed, partial or failed by the coverage rule below
(docs/decisions.md, "Sensitive-data scans: coverage").

Pure: chunking, the coverage block and the final status are functions of the ledger alone.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from services.domain import contracts as c
from services.domain.envelope import deterministic_id, follow, iso
from services.domain.kinds.base import Kind
from services.domain.vocabulary import COORDINATOR_SOURCE

ENUMERATION_FACTOR = {"complete": 1.0, "in_progress": 1.0, "partial": 0.5, "failed": 0.0}


def chunks(scan_id: str, files: list[dict], max_workers: int) -> list[dict]:
    """The unit plans: `files` (in enumeration order) in min(max_workers, len(files)) contiguous chunks,
    sizes differing by one at most."""
    n = min(max_workers, len(files))
    plans, start = [], 0
    for i in range(n):
        size = len(files) // n + (1 if i < len(files) % n else 0)
        part = files[start:start + size]
        plans.append({"unit_id": f"{scan_id}.c{i}", "index": i, "blob": "", "record_count": len(part),
                      "counted_records": len(part), "partition_key": [], "rule_ids": [], "files": part,
                      "start_index": start, "end_index": start + size - 1})
        start += size
    return plans


def coverage(*, target: float, strategy: str, enumeration_status: str, enumerated: int, scanned: int,
             skipped: int, failed: int, unchanged: int = 0) -> dict:
    """The seed's coverage block.

    coverage_pct = (scanned + unchanged) / enumerated (1.0 when a finished enumeration found nothing;
    0 when it failed), `unchanged` being the files an incremental scan skipped as unchanged since its
    baseline scan covered them (they count in total_skipped too);
    completeness_score = coverage_pct × enumeration factor (complete or in progress 1, partial 0.5,
    failed 0) × (1 − failed / enumerated). Both rounded to 4 decimals; target_met compares the
    unrounded coverage with the target.
    """
    if enumerated:
        pct = (scanned + unchanged) / enumerated
        failures = 1 - failed / enumerated
    else:
        pct = 0.0 if enumeration_status in ("failed", "in_progress") else 1.0
        failures = 1.0
    return {
        "coverage_target": target,
        "coverage_strategy": strategy,
        "coverage_pct": round(pct, 4),
        "target_met": pct >= target,
        "completeness_score": round(pct * ENUMERATION_FACTOR[enumeration_status] * failures, 4),
        "enumeration_status": enumeration_status,
        "total_enumerated": enumerated,
        "total_scanned": scanned,
        "total_skipped": skipped,
        "total_failed": failed,
    }


def external(request: dict) -> bool:
    """A BYOC scan: its chunks wait on the ledger (chunk.offered) for workers the customer runs,
    which claim them through the API; the in-cluster evaluators never see them."""
    return (request.get("options") or {}).get("execution") == "byoc"


def deadline(request: dict) -> str:
    """When a scan's chunks stop reading files: its request time plus timeout_minutes."""
    requested = datetime.fromisoformat(request["requested_at"].replace("Z", "+00:00"))
    return iso(requested + timedelta(minutes=request["options"].get("timeout_minutes", 120)))


def overdue(state: dict, now: str, grace_s: float) -> list[str]:
    """The chunks of a running sensitive-data scan still pending `grace_s` after its deadline: no worker
    is on them (a running chunk stops reading at the deadline and reports within moments; a BYOC
    chunk may have had no worker at all), so they fail and the scan ends with what it found."""
    if state.get("kind") != "sensitive" or state["status"] != "running":
        return []
    due = datetime.fromisoformat(deadline(state["request"]).replace("Z", "+00:00")) + timedelta(seconds=grace_s)
    if datetime.fromisoformat(now.replace("Z", "+00:00")) < due:
        return []
    return [unit_id for unit_id, unit in state["units"].items() if unit["status"] == "pending"]


def baseline_versions(request: dict, files: list[dict], base: dict[str, dict[str, str]]) -> list[dict]:
    """An incremental scan's files, each marked unchanged when its version is its baseline's."""
    if request.get("type") != "incremental":
        return files
    return [{**f, "unchanged": True} if base.get(f["connector_id"], {}).get(f["name"]) == f["version"] else f
            for f in files]


def final_status(*, enumeration_status: str, target_met: bool, strategy: str, units_failed: int,
                 units_completed: int, files_read: int, files_failed: int) -> str:
    """completed: the enumeration is complete, every chunk completed and the coverage target is met;
    failed: nothing could be enumerated, every chunk failed, no file could be read and some failed
    (a scan that read nothing has no verdict to give), or a strict scan missed its target;
    partial otherwise (the ledger's partial_failure). `files_read`: scanned, or unchanged since a
    baseline that read them."""
    if enumeration_status == "failed" or (units_failed and not units_completed):
        return "failed"
    if files_failed and not files_read:
        return "failed"
    if not target_met and strategy == "strict":
        return "failed"
    if enumeration_status == "complete" and not units_failed and target_met:
        return "completed"
    return "partial_failure"


def state_files(state: dict) -> dict[str, int]:
    """{scanned, skipped, failed, unchanged}: the file counts a scan's chunks reported."""
    totals = {"scanned": 0, "skipped": 0, "failed": 0, "unchanged": 0}
    for unit in state["units"].values():
        for key in totals:
            totals[key] += (unit.get("files") or {}).get(key, 0)
    return totals


def state_coverage(state: dict) -> dict:
    """The coverage block of a scan's state in the coordinator (the counts its chunks reported)."""
    opts = state["request"]["options"]
    enumeration = state.get("enumeration") or {}
    totals = state_files(state)
    return coverage(target=opts.get("coverage_target", 1.0), strategy=opts.get("coverage_strategy", "best_effort"),
                    enumeration_status=enumeration.get("status", "in_progress"),
                    enumerated=enumeration.get("total_enumerated", 0), **totals)


class Sensitive(Kind):

    def checks(self, request: dict) -> list[dict]:
        return []  # the detectors are the same for every scan (services.domain.detectors)

    def work(self, cause: dict, request: dict, units: list[dict], attempt: int = 0) -> list[dict]:
        """Work units for the evaluators, or a BYOC scan's chunk offers for external workers."""
        type_ = c.CHUNK_OFFERED if external(request) else c.WORK_UNIT
        return [follow(cause, type_, c.WorkUnit(
            scan_id=request["scan_id"],
            unit_id=unit["unit_id"],
            index=unit["index"],
            kind="sensitive",
            attempt=attempt,
            record_count=unit["record_count"],
            counted_records=unit["counted_records"],
            connectors=request["connectors"],
            blob=unit["blob"],
            start_index=unit["start_index"],
            deadline=deadline(request),
            **({"llm_assist": True} if request["options"].get("llm_assist") else {}),
            **({"max_findings_per_file": cap} if (cap := request["options"].get("max_findings_per_file")) else {}),
            **({"detectors": chosen} if (chosen := request["options"].get("detectors")) else {}),
            **({"custom_detectors": own} if (own := request.get("custom_detectors")) else {}),
            **({"allowlist": allowed} if (allowed := request.get("allowlist")) else {}),
        ).model_dump(exclude_unset=True), id=deterministic_id(type_, unit["unit_id"], attempt),
            source=COORDINATOR_SOURCE) for unit in units]

    def resume_refused(self, request: dict, now: str) -> str | None:
        """A resume past the scan's deadline would skip every file left (its chunks stop reading there)
        and end with less than the uninterrupted scan: refused, a rerun gets a deadline of its own."""
        if now >= deadline(request):
            return (f"the scan's timeout ({request['options'].get('timeout_minutes', 120)} minutes from its"
                    " request) has passed, so its remaining chunks would read nothing; rerun it")
        return None

    def overdue(self, state: dict, now: str, grace_s: float) -> list[str]:
        return overdue(state, now, grace_s)

    def external(self, request: dict) -> bool:
        return external(request)

    def outcome(self, state: dict) -> str:
        """By coverage, not only by units: see final_status."""
        block, files = state_coverage(state), state_files(state)
        units = list(state["units"].values())
        status = final_status(enumeration_status=block["enumeration_status"], target_met=block["target_met"],
                              strategy=block["coverage_strategy"],
                              units_failed=sum(1 for u in units if u["status"] == "failed"),
                              units_completed=sum(1 for u in units if u["status"] == "completed"),
                              files_read=files["scanned"] + files["unchanged"], files_failed=files["failed"])
        return {"completed": "complete", "partial_failure": "partial_failure", "failed": "fail"}[status]


# seed 003's operation types have no other than "scan": GET /api/operations/{id} has `kind` to tell it apart
SENSITIVE = Sensitive(name="sensitive", label="sensitive-data scan", scan_id_prefix="scan-")
