import hashlib
import uuid

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from services.domain import contracts as c
from services.domain.envelope import (
    ID_NAMESPACE,
    _uuid5_text,
    clustered_ids,
    decode,
    deterministic_id,
    deterministic_ids,
)
from services.domain.evaluation import encoded_violations
from services.domain.kinds.compliance import COMPLIANCE
from services.domain.rules import VIOLATION_SCHEMA, parse_rule


def test_deterministic_ids_are_uuid5_of_the_joined_parts():
    for parts in [("a",), ("violation", "s1", "s1.u0", "r1", 42), ("é" * 300, None)]:
        assert deterministic_id(*parts) == str(uuid.uuid5(ID_NAMESPACE, "|".join(map(str, parts))))


@given(st.lists(st.text(max_size=6), min_size=1, max_size=4), st.one_of(st.text(max_size=8), st.integers(), st.none()))
def test_clustered_ids_are_uuid8_led_by_their_prefix_and_ended_by_the_uuid5_hash(prefix, last):
    """The prefix's 6 bytes lead (one stretch of an index per unit and rule); the rest is the hash of all the
    parts, as the uuid5 of them takes it; a valid RFC 9562 UUID of version 8."""
    made = clustered_ids(*prefix)(last)
    parsed = uuid.UUID(made)
    assert str(parsed) == made and parsed.version == 8 and parsed.variant == uuid.RFC_4122
    assert made == clustered_ids(*prefix)(last)  # deterministic: a unit run again names its violations alike
    assert made[:13] == clustered_ids(*prefix)("another")[:13] == clustered_ids(*prefix)(None)[:13]
    lead = hashlib.sha1(ID_NAMESPACE.bytes + ("|".join(map(str, prefix)) + "|").encode()).digest()
    whole = hashlib.sha1(ID_NAMESPACE.bytes + "|".join(map(str, (*prefix, last))).encode()).digest()
    assert parsed.bytes[:6] == lead[:6]
    assert (parsed.bytes[7:8], parsed.bytes[9:]) == (whole[1:2], whole[3:10])  # the bits the marks spare
    assert made[:13] != clustered_ids(*prefix, "x")(last)[:13]


def test_ids_of_one_prefix_differ_for_every_key():
    id_of = clustered_ids("violation", "s1", "s1.u0", "r1")
    assert len({id_of(key) for key in range(200_000)}) == 200_000


def _violations(n: int) -> pa.Table:
    return pa.table({"row": list(range(n)), "key": [f"T{i}" for i in range(n)], "account": ["A1"] * n,
                     "value": ["9"] * n, "window": [None] * n, "transaction_id": [f"T{i}" for i in range(n)],
                     "amount": ["9"] * n, "timestamp": [None] * n}, schema=VIOLATION_SCHEMA)


def test_a_unit_names_its_violations_as_its_scan_was_planned_to():
    """A compliance scan plans its units with clustered ids; a unit planned before them (no violation_ids) is
    named with uuid5 as it was, so run again by this code it emits the ids its first run emitted."""
    rule = parse_rule({"id": "big", "name": "Big", "type": "threshold", "severity": "high",
                       "params": {"field": "amount", "op": "gt", "value": 1}})
    cause = {"id": "cmd", "subject": "s", "workspaceid": "w"}
    request = {"scan_id": "s", "policy": {"rules": [rule.__dict__ | {"params": {"field": "amount", "op": "gt",
                                                                               "value": 1}}]},
               "mapping": {"mapping": {}}}
    (planned,) = COMPLIANCE.work(cause, {**request, "kind": "compliance"},
                                 [{"unit_id": "s.u0", "index": 0, "blob": "b", "record_count": 3,
                                   "counted_records": 3, "rule_ids": []}])
    assert planned["data"]["violation_ids"] == "clustered"
    for work, name in ((planned["data"], clustered_ids), ({"scan_id": "s", "unit_id": "s.u0"}, deterministic_ids)):
        ids = [decode(raw)["data"]["violation_id"] for raw in encoded_violations(cause, work, rule, _violations(3))]
        assert ids == [name("violation", "s", "s.u0", "big")(f"T{i}") for i in range(3)], name
    assert c.WorkUnit.model_validate(planned["data"]).violation_ids == "clustered"


def test_the_uuid5_text_of_any_digest_is_the_uuid_modules():
    """Every digest shape (every variant nibble, every version nibble overwritten) as uuid.UUID writes it."""
    for i in range(5000):
        sha1 = hashlib.sha1(str(i).encode()).digest()
        assert _uuid5_text(sha1) == str(uuid.UUID(bytes=sha1[:16], version=5))
    for nibble in range(256):
        sha1 = bytes([nibble]) * 20
        assert _uuid5_text(sha1) == str(uuid.UUID(bytes=sha1[:16], version=5))
