"""A compliance scan (seeds 001 and 002): a policy's rules over an uploaded file.

The upload is split into units by services.domain.planning (cross-record rules see every record of
their group key); each unit's work carries its rules, the mapping and its rows of the upload.
"""
from __future__ import annotations

from services.domain import contracts as c
from services.domain.envelope import deterministic_id, follow
from services.domain.kinds.base import Kind
from services.domain.vocabulary import COORDINATOR_SOURCE


class Compliance(Kind):

    def checks(self, request: dict) -> list[dict]:
        """The policy's active rules, as the request snapshot carries them."""
        return (request.get("policy") or {}).get("rules", [])

    def work(self, cause: dict, request: dict, units: list[dict], attempt: int = 0) -> list[dict]:
        rules = {r["id"]: r for r in self.checks(request)}
        mapping = request["mapping"]
        return [follow(cause, c.WORK_UNIT, c.WorkUnit(
            scan_id=request["scan_id"],
            unit_id=unit["unit_id"],
            index=unit["index"],
            blob=unit["blob"],
            **({"rows": unit["rows"], "numbers": unit["numbers"]} if unit.get("rows") else {}),
            record_count=unit["record_count"],
            counted_records=unit["counted_records"],
            attempt=attempt,
            rules=[rules[rid] for rid in unit["rule_ids"]],
            mapping=mapping["mapping"],
            temporal_scale=mapping.get("temporal_scale"),
            violation_ids="clustered",
        ).model_dump(exclude_unset=True), id=deterministic_id(c.WORK_UNIT, unit["unit_id"], attempt),
            source=COORDINATOR_SOURCE) for unit in units]


COMPLIANCE = Compliance(name="compliance", label="scan", has_delta=True)
