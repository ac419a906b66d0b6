"""Evaluating one unit of work: its rules over its records, as violation events and counts."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from services.domain import contracts as c
from services.domain.envelope import (
    clustered_ids,
    decode,
    deterministic_id,
    deterministic_ids,
    follow,
    follower_encoder,
    utcnow,
)
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


def violation_ids(work: dict) -> Callable[..., Callable[[object], str]]:
    """How the work's violations are named: ids that sort together by unit and rule (what its scan was planned
    with), or the uuid5 of a unit planned before them (run again now, it names its violations as before:
    one id per violation, whichever worker ran it)."""
    return clustered_ids if work.get("violation_ids") == "clustered" else deterministic_ids


def encoded_violations(cause: dict, work: dict, rule: Rule, violations: pa.Table) -> list[bytes]:
    """The violation.detected events of one rule's violations in a unit, encoded (without their chain
    fields: services.domain.ledger_chain). All but each violation's own fields are shared, so they
    are encoded once (services.domain.envelope.follower_encoder): a large scan publishes a
    hundred thousand of these, and this is most of what each costs the evaluator."""
    scan_id, unit_id = work["scan_id"], work["unit_id"]
    columns = violations.to_pydict()
    encode_one = follower_encoder(cause, c.VIOLATION_DETECTED, {
        "scan_id": scan_id, "unit_id": unit_id, "rule_id": rule.id, "rule_name": rule.name, "rule_type": rule.type,
        "severity": rule.severity,
    }, source=SOURCE, time=utcnow(), id_key="violation_id")  # one timestamp per slice: the clock costs at this rate
    id_of = violation_ids(work)("violation", scan_id, unit_id, rule.id)
    rule_id, names = rule.id, ("account", *RECORD_FIELDS)
    out = []
    append = out.append
    records = zip(*(columns[f] for f in RECORD_FIELDS), strict=True)
    for row, account, key, value, window, fields in zip(columns["row"], columns["account"], columns["key"],
                                                         columns["value"], columns["window"], records, strict=True):
        # the signature is services.domain.delta.signature(rule_id, account, (fields[0] or key) if row is not
        # None else None), written out: a call per violation costs at this rate (a property test holds them equal)
        if account is not None:
            own = {"account": account, "record_index": row, "record_key": key, "value": value, "window": window,
                   "signature": f"{rule_id}:{account}"}
        else:
            own = {"account": None, "record_index": row, "record_key": key, "value": value, "window": window,
                   "signature": f"{rule_id}:" if row is None else f"{rule_id}:#{fields[0] or key}"}
        if row is not None:
            # the record's mapped fields (a group's violation has none): who, how much, when, which transaction
            record = {k: v for k, v in zip(names, (account, *fields), strict=True) if v is not None}
            if record:
                own["record"] = record
        append(encode_one(id_of(key), own))
    return out


def violation_events(cause: dict, work: dict, rule: Rule, violations: pa.Table) -> list[dict]:
    """The same events, decoded: what a consumer of the violations topic reads."""
    return [decode(raw) for raw in encoded_violations(cause, work, rule, violations)]


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
