"""Evaluating one unit of work: its rules over its records, as violation events and counts."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from services.domain import contracts as c
from services.domain.delta import signature
from services.domain.envelope import deterministic_id, follow, utcnow
from services.domain.rules import RECORD_FIELDS, Rule, RuleError, Unevaluated, evaluate_counted, parse_rule
from services.domain.vocabulary import EVALUATOR_SOURCE as SOURCE


@dataclass
class RuleOutcome:
    rule: Rule
    violations: pa.Table | None
    error: str | None
    unevaluated: Unevaluated | None = None  # records the rule could not judge (left out, counted)


def evaluate_unit(table: pa.Table, work: dict) -> Iterator[RuleOutcome]:
    """Each rule of the unit in turn; a rule that cannot run on this data is an outcome, not a crash."""
    for raw in work["rules"]:
        rule = parse_rule(raw)
        try:
            violations, unevaluated = evaluate_counted(table, rule, work["mapping"], work.get("temporal_scale"))
            yield RuleOutcome(rule, violations, None, unevaluated)
        except RuleError as exc:
            yield RuleOutcome(rule, None, f"rule {rule.id} ({rule.name}): {exc}")


def violation_events(cause: dict, work: dict, rule: Rule, violations: pa.Table) -> list[dict]:
    scan_id, unit_id = work["scan_id"], work["unit_id"]
    columns = violations.to_pydict()
    found_at = utcnow()  # one timestamp per batch: the clock is a real cost at this rate
    events = []
    records = zip(*(columns[f] for f in RECORD_FIELDS), strict=True)
    for row, account, key, value, window, fields in zip(columns["row"], columns["account"], columns["key"],
                                                         columns["value"], columns["window"], records, strict=True):
        vid = deterministic_id("violation", scan_id, unit_id, rule.id, key)
        # the record's mapped fields (a group's violation has none): who, how much, when, which transaction
        record = {k: v for k, v in zip(("account", *RECORD_FIELDS), (account, *fields), strict=True)
                  if v is not None} if row is not None else None
        events.append(follow(cause, c.VIOLATION_DETECTED, {
            "violation_id": vid,
            "scan_id": scan_id,
            "unit_id": unit_id,
            "rule_id": rule.id,
            "rule_name": rule.name,
            "rule_type": rule.type,
            "severity": rule.severity,
            "account": account,
            "record_index": row,
            "record_key": key,
            "value": value,
            "window": window,
            "signature": signature(rule.id, account, (fields[0] or key) if row is not None else None),
            **({"record": record} if record else {}),
        }, id=vid, source=SOURCE, time=found_at))
    return events


def progress_event(cause: dict, work: dict, rules_done: int) -> dict:
    attempt = work.get("attempt", 0)
    data = c.UnitProgressed(scan_id=work["scan_id"], unit_id=work["unit_id"], rules_done=rules_done,
                            rules_total=len(work["rules"]), attempt=attempt).model_dump(exclude_unset=True)
    return follow(cause, c.UNIT_PROGRESSED, data,
                  id=deterministic_id(c.UNIT_PROGRESSED, work["unit_id"], attempt, rules_done), source=SOURCE)


def unit_result_event(cause: dict, work: dict, by_rule: dict[str, int], by_severity: dict[str, int],
                      errors: list[str], rules_done: int, unevaluated: dict[str, dict] | None = None) -> dict:
    """`unevaluated`: per rule id, {count, rows} of the records it could not judge (only when some)."""
    attempt = work.get("attempt", 0)
    base = {"scan_id": work["scan_id"], "unit_id": work["unit_id"], "attempt": attempt,
            "violations_by_rule": by_rule, "violations_by_severity": by_severity}
    if errors:
        type_, result = c.UNIT_FAILED, c.UnitFailed(**base, error="; ".join(errors))
    else:
        type_, result = c.UNIT_COMPLETED, c.UnitCompleted(**base, record_count=work["counted_records"],
                                                          rules_done=rules_done,
                                                          **({"unevaluated": unevaluated} if unevaluated else {}))
    data = result.model_dump(exclude_unset=True)
    return follow(cause, type_, data, id=deterministic_id(type_, work["unit_id"], attempt), source=SOURCE)
