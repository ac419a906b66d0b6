"""The JSON shapes of seed 001 (GET /api/scan/{id}) from the read model."""
from __future__ import annotations

from api.scans import reads
from services.domain.kinds import kind_of
from services.domain.vocabulary import FINISHED

# Ledger states as seed 001 names them.
STATUS = {"queued": "pending", "running": "running", "completed": "completed", "partial_failure": "failed",
          "failed": "failed", "aborted": "aborted"}


def scan_status(row) -> str:
    if row["status"] in FINISHED and not row["finalized"]:
        return "running"  # finished on the ledger, violations still arriving
    return STATUS[row["status"]]


def rules_processed(row) -> int:
    if row["rules_processed"] is not None and row["finalized"]:
        return row["rules_processed"]
    if not row["rule_evals_total"]:
        return 0
    return row["rules_total"] * row["rule_evals_done"] // row["rule_evals_total"]


def unevaluated(row) -> list[dict]:
    """Per rule, the records it could not judge (a value that does not read as a number or a time): left out
    of the rule, so neither a violation nor a pass; a few of their record indexes to look at."""
    found = reads.loads(row["unevaluated"]) or {}
    return [{"rule_id": rule_id, "count": got["count"], "sample_record_indexes": got["rows"]}
            for rule_id, got in sorted(found.items())]


def scan_view(db, row) -> dict:
    settled = reads.is_settled(row)
    status = scan_status(row)
    return {
        "id": row["scan_id"],
        "status": status,
        # every violation of the scan in the read model: its list's total and its run's count (one truth: an
        # aborted scan's ledger count leaves out the units it cut short); 0 in progress, as seed 001 says
        "violation_count": row["violations_seen"] if settled else 0,
        # a score only for a scan that completed: a failed or aborted one shows 0, as a running one
        # does (seed 001: a number), never the 100 of "no violations found" in data it never read
        "compliance_score": row["compliance_score"] if settled and status == "completed" else 0,
        "rules_processed": rules_processed(row),
        "rules_total": row["rules_total"],
        "created_at": row["created_at"],
        "completed_at": row["finished_at"] if settled else None,
        "audit_name": row["audit_name"],
        "record_count": row["record_count"],
        "policy_id": row["policy_id"],
        "upload_id": row["upload_id"],
        "mapping_id": row["mapping_id"],
        "audit_id": row["audit_id"],
        "mapping_config": reads.loads(row["mapping_config"]) or {},
        "temporal_scale": row["temporal_scale"],
        "score_history": reads.score_history(db, row["scan_id"]) if settled else [],
        "delta": reads.loads(row["delta"]) if settled else None,
        "error": row["error"] if settled else None,
        "unevaluated": unevaluated(row) if settled else [],
        "pii_findings": reads.loads(row["pii_findings"]) or [],
    }


def pending_view(request_row) -> dict:
    """A scan the API accepted that the ledger has not shown the projector yet (any kind:
    a monitor scan's executionId reads here too, with no policy, upload or mapping)."""
    r = request_row["request"]
    policy, upload, mapping = r.get("policy") or {}, r.get("upload") or {}, r.get("mapping") or {}
    return {
        "id": r["scan_id"], "status": "pending", "violation_count": 0, "compliance_score": 0,
        "rules_processed": 0, "rules_total": len(kind_of(r).checks(r)), "created_at": r["requested_at"],
        "completed_at": None, "audit_name": r.get("audit_name"), "record_count": 0,
        "policy_id": policy.get("id"), "upload_id": upload.get("id"), "mapping_id": mapping.get("id"),
        "audit_id": r.get("audit_id"), "mapping_config": mapping.get("mapping") or {},
        "temporal_scale": mapping.get("temporal_scale"), "score_history": [], "delta": None, "error": None,
        "pii_findings": upload.get("pii_findings", []),
    }
