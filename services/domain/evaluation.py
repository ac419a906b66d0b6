"""Evaluating one unit of work: its rules over its records, as violation events and counts."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from services.domain import contracts as c
from services.domain import json_columns as jc
from services.domain.envelope import decode, deterministic_id, follow, follower_parts, utcnow
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


def encoded_violations(cause: dict, work: dict, rule: Rule, violations: pa.Table) -> list[bytes]:
    """The violation.detected events of one rule's violations in a unit, encoded (without their chain
    fields: services.domain.ledger_chain): the bytes of each event's dict encoded by orjson, built a column
    at a time (services.domain.json_columns). All but each violation's own fields are shared, so they are
    encoded once (services.domain.envelope.follower_parts). A large scan publishes a hundred thousand of
    these: a Python dict and encode per violation was most of what each cost the evaluator (3.5 µs)."""
    if not violations.num_rows:
        return []
    scan_id, unit_id = work["scan_id"], work["unit_id"]
    before, between, after = follower_parts(cause, c.VIOLATION_DETECTED, {
        "scan_id": scan_id, "unit_id": unit_id, "rule_id": rule.id, "rule_name": rule.name, "rule_type": rule.type,
        "severity": rule.severity,
    }, source=SOURCE, time=utcnow(), id_key="violation_id")  # one timestamp per slice: the clock costs at this rate
    col = {name: _array(violations.column(name)) for name in violations.column_names}
    texts = {name: jc.text(col[name]) for name in ("account", "key", "value", "window", *RECORD_FIELDS)}
    row = col["row"]
    # ids that sort together by unit and rule (what the scan was planned with), or the uuid5 of a unit planned
    # before them (run again now, it names its violations as before, whichever worker runs it)
    ids = jc.ids(("violation", scan_id, unit_id, rule.id), col["key"].to_pylist(),
                 work.get("violation_ids") == "clustered")
    events = jc.joined(before.decode(), '"', ids, '"', between.decode(), '"', ids, '"', after.decode(),
                       ',"account":', *jc.value(texts["account"]),
                       ',"record_index":', jc.integer(row),
                       ',"record_key":', *jc.value(texts["key"]), ',"value":', *jc.value(texts["value"]),
                       ',"window":', *jc.value(texts["window"]), ',"signature":"', *_signature(rule.id, row, texts),
                       '"', *_record(row, texts), "}}")
    return events.view(pa.binary()).to_numpy(zero_copy_only=False).tolist()


def _array(column: pa.ChunkedArray) -> pa.Array:
    """A column as one array (a slice of one chunk, as most are, without combine_chunks' 5 µs)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _signature(rule_id: str, row: pa.Array, texts: dict[str, pa.Array]) -> jc.Pieces:
    """The signature's JSON text: services.domain.delta.signature(rule_id, account, (transaction_id or key) if
    row is not None else None), a column at a time (a property test holds them equal)."""
    rule_text, account = orjson.dumps(rule_id)[1:-1].decode(), texts["account"]
    if not account.null_count:
        return [f"{rule_text}:", account]
    txid = texts["transaction_id"]
    who = pc.if_else(pc.fill_null(pc.not_equal(txid, ""), False), txid, texts["key"])
    return [pc.if_else(pc.is_valid(account), jc.joined(f"{rule_text}:", account),
                       pc.if_else(pc.is_valid(row), jc.joined(f"{rule_text}:#", who), f"{rule_text}:"))]


def _record(row: pa.Array, texts: dict[str, pa.Array]) -> jc.Pieces:
    """`,"record":{…}`: the record's mapped fields that are not null (who, how much, when, which transaction),
    where there is one (a group's violation, with no row, has none)."""
    fields = [piece for name in ("account", *RECORD_FIELDS) for piece in jc.member(name, texts[name])]
    if not fields or row.null_count == len(row):
        return []
    if not row.null_count and isinstance(fields[0], str):  # every row has a record, led by a field never null
        return [',"record":{', fields[0][1:], *fields[1:], "}"]
    present = jc.joined(*fields)
    return [pc.if_else(pc.and_(pc.is_valid(row), pc.not_equal(present, "")),
                       jc.joined(',"record":{', pc.utf8_slice_codeunits(present, 1), "}"), "")]


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
