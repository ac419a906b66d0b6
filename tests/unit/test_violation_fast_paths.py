"""The violations' fast paths give exactly what the general ones give, on values shaped to break them
(quotes, backslashes, control characters, the encoder's own mark, emoji, nulls):

- the evaluator encodes a rule's violations a column at a time from shared bytes (encoded_violations):
  byte for byte what encoding each event's dict gives, and sealed as seal() seals the dict;
- the projector decodes a violation straight into its row (services.domain.codec.decode_violation):
  the row the dict path makes, and never a record decode_checked refuses;
- the offsets a batch stores and mirrors to Kafka (services.readmodels.apply.next_offsets): after each
  partition's highest offset, in whatever order the records come.
"""
from __future__ import annotations

from itertools import zip_longest

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain import contracts as c
from services.domain.codec import PoisonRecord, decode_checked, decode_violation
from services.domain.delta import signature
from services.domain.envelope import (
    clustered_ids,
    decode,
    deterministic_id,
    deterministic_ids,
    encode,
    follow,
    follower_parts,
)
from services.domain.evaluation import encoded_violations
from services.domain.json_columns import ids as id_column
from services.domain.ledger_chain import Chain
from services.domain.rules import RECORD_FIELDS, VIOLATION_SCHEMA, parse_rule
from services.domain.vocabulary import EVALUATOR_SOURCE
from services.readmodels.apply import Record, decode_record, next_offsets
from services.readmodels.violations import COLUMNS, row_of_event

ODD = st.sampled_from(['"', "\\", "\x00id\x00", "\\u0000id\\u0000", "é", "😀", "\n", "", "a,b", "}}", "\x1f", "\x7f",
                      "\u2028", "/", "\t\r\b\f", 'a"b\\c', "null", ",\"record\":{", "1e20", "-0.0", "0.1", "NaN"])
TEXT = st.one_of(ODD, st.text(max_size=8))


@st.composite
def violation_tables(draw) -> pa.Table:
    """Each column null nowhere, everywhere or here and there: the encoder writes each case its own way."""
    n = draw(st.integers(0, 6))

    def column(values: st.SearchStrategy) -> list:
        nulls = draw(st.sampled_from(["none", "all", "some"]))
        if nulls == "all":
            return [None] * n
        return draw(st.lists(st.one_of(st.none(), values) if nulls == "some" else values, min_size=n, max_size=n))
    table = {"row": column(st.integers(0, 10**9)), "key": draw(st.lists(TEXT, min_size=n, max_size=n))}
    for name in ("account", "value", "window", *RECORD_FIELDS):
        table[name] = column(TEXT)
    return pa.table(table, schema=VIOLATION_SCHEMA)


def reference_events(cause: dict, work: dict, rule, violations: pa.Table, found_at: str) -> list[dict]:
    """The events as they were built before the fast path: a dict each, every field set one by one."""
    columns = violations.to_pydict()
    events = []
    for i, row in enumerate(columns["row"]):
        account, key = columns["account"][i], columns["key"][i]
        fields = [columns[f][i] for f in RECORD_FIELDS]
        vid = deterministic_id("violation", work["scan_id"], work["unit_id"], rule.id, key)
        record = {k: v for k, v in zip(("account", *RECORD_FIELDS), (account, *fields), strict=True)
                  if v is not None} if row is not None else None
        events.append(follow(cause, c.VIOLATION_DETECTED, {
            "violation_id": vid, "scan_id": work["scan_id"], "unit_id": work["unit_id"], "rule_id": rule.id,
            "rule_name": rule.name, "rule_type": rule.type, "severity": rule.severity, "account": account,
            "record_index": row, "record_key": key, "value": columns["value"][i], "window": columns["window"][i],
            "signature": signature(rule.id, account, (fields[0] or key) if row is not None else None),
            **({"record": record} if record else {}),
        }, id=vid, source=EVALUATOR_SOURCE, time=found_at))
    return events


@settings(max_examples=400, deadline=None)
@given(violation_tables(), TEXT, TEXT, st.one_of(st.none(), TEXT), st.integers(0, 6))
def test_encoded_violations_are_the_bytes_of_their_events_dicts(violations, rule_name, subject, correlation, cut):
    # a slice of a table of two chunks, as a unit publishes its violations (its arrays start past their buffers')
    violations = pa.concat_tables([violations, violations]).slice(min(cut, violations.num_rows), violations.num_rows)
    rule = parse_rule({"id": "big", "name": rule_name or "x", "type": "threshold", "severity": "high",
                       "params": {"field": "amount", "op": "gt", "value": 1}})
    cause = {"id": "cmd", "subject": subject or "s", "workspaceid": "w", "correlationid": correlation}
    work = {"scan_id": "s", "unit_id": "s.u0"}
    raws = encoded_violations(cause, work, rule, violations)
    found_at = decode(raws[0])["time"] if raws else "t"
    expected = reference_events(cause, work, rule, violations, found_at)
    assert raws == [encode(e) for e in expected]
    # sealed from the bytes as from the dict: the same records, the same chain
    by_dict, by_bytes = Chain("s.u0#0"), Chain("s.u0#0")
    by_bytes.cover("e1", "d1")
    by_dict.cover("e1", "d1")
    assert [by_bytes.seal_encoded(raw) for raw in raws] == [by_dict.seal(e) for e in expected]
    assert (by_bytes.seq, by_bytes.prev) == (by_dict.seq, by_dict.prev)


@pytest.mark.parametrize("subject", ["\x00id\x00", "\x00id\x00\x00", 'x"\x00id\x00\x00\x00'])
def test_the_shared_parts_take_a_longer_mark_when_theirs_is_in_a_shared_string(subject):
    cause = {"id": "cmd", "subject": subject, "workspaceid": "w"}
    before, between, after = follower_parts(cause, c.VIOLATION_DETECTED, {"k": "v"}, source="x", time="t",
                                            id_key="vid")
    expected = follow(cause, c.VIOLATION_DETECTED, {"vid": "1", "k": "v", "own": 2}, id="1", source="x", time="t")
    assert b"".join((before, b'"1"', between, b'"1"', after, b',"own":2}}')) == encode(expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=4), st.lists(TEXT, min_size=1, max_size=8), st.booleans())
def test_ids_written_a_column_at_a_time_are_the_ids_one_at_a_time(prefix, keys, clustered):
    id_of = (clustered_ids if clustered else deterministic_ids)(*prefix)
    assert id_column(prefix, keys, clustered).to_pylist() == [id_of(key) for key in keys]


@given(st.lists(TEXT, min_size=1, max_size=4), st.one_of(TEXT, st.integers(), st.none()))
def test_ids_with_a_shared_prefix_are_the_ids_of_all_their_parts(prefix, last):
    assert deterministic_ids(*prefix)(last) == deterministic_id(*prefix, last)


# --- the projector's decode ---------------------------------------------------------------------------

def _violation_event(**data_changes) -> dict:
    work = {"scan_id": "s", "unit_id": "s.u0"}
    rule = parse_rule({"id": "big", "name": "Big", "type": "threshold", "severity": "high",
                       "params": {"field": "amount", "op": "gt", "value": 1}})
    table = pa.table({"row": [3], "key": ["3"], "account": ["A1"], "value": ["9"], "window": [None],
                      "transaction_id": ["T3"], "amount": ["9"], "timestamp": [None]}, schema=VIOLATION_SCHEMA)
    (raw,) = encoded_violations({"id": "cmd", "subject": "s", "workspaceid": "w"}, work, rule, table)
    event = decode(raw)
    for key, value in data_changes.items():
        if value is _DROP:
            event["data"].pop(key, None)
        else:
            event["data"][key] = value
    return event


_DROP = object()
_ANY = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False), TEXT,
                 st.lists(st.integers(0, 9), max_size=2), st.dictionaries(TEXT, TEXT, max_size=2))
_FIELDS = st.sampled_from(["violation_id", "scan_id", "unit_id", "rule_id", "rule_name", "rule_type", "severity",
                           "account", "record_index", "record_key", "value", "window", "signature", "record",
                           "container_id", "observed", "extra"])


def _named(row: tuple) -> dict:
    """A violation's row by column, NULL for the trailing columns it leaves out."""
    return dict(zip_longest(COLUMNS, row))


class _Message:
    def __init__(self, value: bytes):
        self._value = value

    def topic(self):
        return "t.violations"

    def partition(self):
        return 0

    def offset(self):
        return 7

    def value(self):
        return self._value

    def timestamp(self):
        return (1, 1000)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_FIELDS, st.one_of(st.just(_DROP), _ANY), max_size=3),
       st.sampled_from([None, "", "other.type", c.VIOLATION_DETECTED]), st.sampled_from(["keep", "", None, 5]))
def test_a_violation_decoded_straight_into_its_row_is_the_row_of_its_checked_event(changes, type_, time):
    event = _violation_event(**changes)
    if type_ is not None:
        event["type"] = type_
    if time != "keep":
        event["time"] = time
    raw = encode(event)
    fast = decode_violation(raw)
    try:
        checked = decode_checked(raw)
    except PoisonRecord:
        assert fast is None  # what the fast path takes, the checks take
        with pytest.raises(PoisonRecord):
            decode_record(_Message(raw))
        return
    record = decode_record(_Message(raw))
    if checked["type"] == c.VIOLATION_DETECTED:
        assert record.row == row_of_event(checked)
    else:
        assert fast is None and record.row is None and record.event == checked


_JSON_VALUES = st.one_of(TEXT, st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.none(),
                        st.lists(TEXT, max_size=2))
_OBJECTS = st.one_of(st.just({}), st.dictionaries(TEXT, _JSON_VALUES, max_size=3))


@settings(max_examples=200, deadline=None)
@given(_OBJECTS, st.one_of(st.none(), _OBJECTS), st.sampled_from([None, 2]), st.booleans())
def test_another_producers_formatting_gives_the_same_row_as_json(record, observed, indent, ascii_only):
    """The fast path keeps a record's and an observed's text as sent (not parsed and re-encoded): from a
    producer that is not orjson (indented, escaped to ASCII) the row holds the same JSON, and the same
    None for an empty object, as the checked path's re-encoded text."""
    import json

    import orjson
    event = _violation_event(record=record, observed=observed)
    raw = json.dumps(event, indent=indent, ensure_ascii=ascii_only).encode()
    fast, checked = _named(decode_record(_Message(raw)).row), _named(row_of_event(decode_checked(raw)))
    texts = ("record", "observed")
    assert {k: v for k, v in fast.items() if k not in texts} == {k: v for k, v in checked.items() if k not in texts}
    as_json = [orjson.loads(fast[k]) if fast[k] else None for k in texts]
    assert as_json == [orjson.loads(checked[k]) if checked[k] else None for k in texts]
    ours = encode(decode(raw))  # the same event as this project's producers encode it (orjson): the very same text
    assert decode_record(_Message(ours)).row == row_of_event(decode_checked(ours))


@pytest.mark.parametrize("record", [b'[1, 2]', b'"text"', b'7', b'{"k": "\xff"}', b'{"k": "\xed\xa0\x80"}'])
def test_a_record_not_an_object_in_utf8_takes_the_checked_path(record):
    """Left to decode_checked, which takes a record of another JSON type as it is and refuses bytes that are
    not UTF-8 (the fast path does not parse the record, so it checks both itself)."""
    raw = encode(_violation_event(record={"k": "PLACEHOLDER"})).replace(b'{"k":"PLACEHOLDER"}', record)
    assert decode_violation(raw) is None
    try:
        checked = decode_checked(raw)
    except PoisonRecord:
        with pytest.raises(PoisonRecord):
            decode_record(_Message(raw))
    else:
        assert decode_record(_Message(raw)).row == row_of_event(checked)


@pytest.mark.parametrize("record", [b"{}", b"{ }", b"{\n  }", b"null"])
def test_an_empty_record_in_any_spacing_is_no_record(record):
    raw = encode(_violation_event(record={"k": "PLACEHOLDER"})).replace(b'{"k":"PLACEHOLDER"}', record)
    assert decode_violation(raw) is not None
    assert decode_record(_Message(raw)).row == row_of_event(decode_checked(raw))
    assert _named(decode_record(_Message(raw)).row)["record"] is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(TEXT, TEXT, max_size=3), max_size=5), TEXT, st.integers(0, 10**12),
       st.lists(TEXT, max_size=2))
def test_sealing_a_slice_at_once_is_sealing_each_in_turn(events, stream, seq, covered):
    """Chain.seal_all writes the chain fields without an encoder per record: the same bytes, the same chain."""
    raws = [encode(e) for e in events]
    one_by_one, at_once = Chain(stream, seq, "ab" * 16), Chain(stream, seq, "ab" * 16)
    for chain in (one_by_one, at_once):
        for i, event_id in enumerate(covered):
            chain.cover(event_id, f"d{i}")
    assert at_once.seal_all(raws) == [one_by_one.seal_encoded(raw) for raw in raws]
    assert (at_once.seq, at_once.prev, at_once.covers) == (one_by_one.seq, one_by_one.prev, one_by_one.covers)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3), st.integers(0, 10**6)), max_size=40))
def test_a_batchs_next_offsets_follow_each_partitions_highest(places):
    expected: dict[tuple[str, int], int] = {}
    for topic, partition, offset in places:
        expected[topic, partition] = max(expected.get((topic, partition), 0), offset + 1)
    assert next_offsets([Record(t, p, o, None, {}) for t, p, o in places]) == expected
