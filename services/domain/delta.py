"""Delta between a scan and the previous scan of the same policy.

Violations are matched by signature `rule_id:account` (seed 001): the same rule triggered on
the same account. Counts are of distinct signatures. A violation with no account (the account
is missing, or not mapped) is matched by its record instead, `rule_id:#<transaction id>` (its
row when no transaction id is mapped): before, every such violation of a rule had the one
signature `rule_id:`, so a delta counted a thousand records missing their account as one.
"""
from __future__ import annotations


def signature(rule_id: str, account: str | None, record: str | None = None) -> str:
    if account is None and record is not None:
        return f"{rule_id}:#{record}"
    return f"{rule_id}:{account if account is not None else ''}"


def compute(current: set[str], previous: set[str], previous_scan_id: str, previous_violation_count: int) -> dict:
    return {
        "new_count": len(current - previous),
        "resolved_count": len(previous - current),
        "unchanged_count": len(current & previous),
        "previous_scan_id": previous_scan_id,
        "previous_violation_count": previous_violation_count,
    }
