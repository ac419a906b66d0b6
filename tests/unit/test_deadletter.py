"""Poison records: what decode_checked refuses, what a dead letter carries, and how the
projector skips a bad record without losing the good ones around it (SQLite, no Kafka)."""
import sqlite3
from types import SimpleNamespace

import pytest

from projections.projector import apply_messages
from services.adapters.db import connect
from services.adapters.deadletter import DeadLetters
from services.domain import contracts as c
from services.domain.codec import PoisonRecord, decode_checked
from services.domain.envelope import encode, headers, make_event
from services.stores import read_models as schema

SCAN = "scan-1"
SCAN_KEY = SCAN.encode()


def violation(n: int = 1, **data) -> dict:
    body = {"violation_id": f"v{n}", "scan_id": SCAN, "unit_id": "u1", "rule_id": "big", "rule_name": "Big",
            "rule_type": "threshold", "severity": "high", "account": "ACC-001", "record_index": n,
            "record_key": f"T{n}", "value": "9500", "window": None, "signature": "big:ACC-001", **data}
    return make_event(c.VIOLATION_DETECTED, SCAN, body, id=f"v{n}", source="test", workspace_id="w")


def finished(**data) -> dict:
    body = {"scan_id": SCAN, "status": "completed", "record_count": 10, "rules_processed": 1, "violation_count": 0,
            "violations_by_rule": {}, "violations_by_severity": {}, "compliance_score": 100.0,
            "finished_at": "2024-01-01T00:00:00.000Z", **data}
    return make_event(c.SCAN_FINISHED, SCAN, body, id="f1", source="test", workspace_id="w")


def refused(value, hdrs=None) -> str:
    with pytest.raises(PoisonRecord) as info:
        decode_checked(value, hdrs)
    return info.value.reason


# --- decode_checked ---------------------------------------------------------------------

def test_valid_events_pass_and_come_back_decoded():
    for event in (violation(), finished(), make_event("scanledger.something.new.v9", SCAN, {"x": 1}, id="n",
                                                     source="t", workspace_id="w")):
        assert decode_checked(encode(event), headers(event)) == event
        assert decode_checked(encode(event), None) == event


def test_what_is_not_our_envelope_is_refused():
    assert refused(None) == "no value (tombstone)"
    assert refused(b"\x00not json at all").startswith("not JSON")
    assert refused(b"[1, 2]") == "not a JSON object but list"
    assert refused(b'"text"') == "not a JSON object but str"
    event = violation()
    for name in ("type", "id", "subject"):
        assert refused(encode({**event, name: ""})) == f"envelope: {name} is missing or not a non-empty string"
        assert refused(encode({**event, name: 5})) == f"envelope: {name} is missing or not a non-empty string"
        missing = {k: v for k, v in event.items() if k != name}
        assert refused(encode(missing)) == f"envelope: {name} is missing or not a non-empty string"
    assert refused(encode({**event, "data": [1]})) == "envelope: data is missing or not an object"
    assert refused(encode({k: v for k, v in event.items() if k != "data"})) == \
        "envelope: data is missing or not an object"
    assert refused(encode({**event, "time": None})) == "envelope: time is missing or not a string"


def test_the_type_header_must_name_the_body_type():
    event = violation()
    assert "scanledger-type header" in refused(encode(event), [("scanledger-type", c.SCAN_ABORTED.encode())])
    assert "scanledger-type header" in refused(encode(event), {"scanledger-type": c.SCAN_ABORTED.encode()})
    assert decode_checked(encode(event), headers(event)) == event
    # ce_type: what records written before this header was renamed carry, checked the same way
    assert "is not the body's type" in refused(encode(event), [("ce_type", c.SCAN_ABORTED.encode())])
    assert "is not the body's type" in refused(encode(event), {"ce_type": c.SCAN_ABORTED.encode()})
    assert decode_checked(encode(event), {"ce_type": c.VIOLATION_DETECTED}) == event  # Faust may give str
    assert decode_checked(encode(event), [("other", b"x")]) == event  # no ce_type header: the body decides


def test_violations_get_the_cheap_check_of_what_the_read_model_needs():
    event = violation()
    del event["data"]["rule_id"], event["data"]["signature"]
    assert refused(encode(event)) == "data lacks rule_id, signature"
    for name in ("violation_id", "scan_id", "rule_id", "record_key", "signature"):
        assert refused(encode(violation(**{name: None}))) == f"data.{name} is not a string"
    assert refused(encode(violation(severity="urgent"))).startswith("data.severity 'urgent' is not one of")
    # optional fields and extra keys are not checked on this hot path (apply falls back if they break it)
    assert decode_checked(encode(violation(container_id=3, observed={"rows": 5})))


def test_other_types_are_validated_in_full_against_their_contract():
    reason = refused(encode(finished(record_count="lots", status="maybe")))
    assert reason.startswith("invalid ScanFinished: ")
    assert "data.status" in reason and "data.record_count" in reason
    event = finished()
    del event["data"]["finished_at"]
    assert refused(encode(event)) == "invalid ScanFinished: data.finished_at: Field required"
    assert "Extra inputs are not permitted" in refused(encode(finished(surprise=1)))


# --- DeadLetters ------------------------------------------------------------------------

class FakePublisher:
    def __init__(self, on_flush=None):
        self.produced, self.flushes, self.on_flush = [], 0, on_flush

    def publish_raw(self, topic, value, key, hdrs):
        self.produced.append((topic, value, key, hdrs))

    def flush(self, timeout=60):
        self.flushes += 1
        if self.on_flush:
            self.on_flush()


def test_a_dead_letter_is_the_record_unchanged_with_where_and_why_in_headers():
    publisher = FakePublisher()
    dead = DeadLetters(publisher, "projector", topic="p.dead-letter")
    dead.send("p.violations", 7, 42, b"scan-1", b"\x00garbage", [("ce_type", b"x")], PoisonRecord("not JSON: x"))
    dead.send("p.violations", 7, 43, None, None, None, KeyError("rule_id"))
    assert publisher.produced == [
        ("p.dead-letter", b"\x00garbage", b"scan-1", [
            ("ce_type", b"x"), ("dl.source.topic", b"p.violations"), ("dl.source.partition", b"7"),
            ("dl.source.offset", b"42"), ("dl.error", b"not JSON: x"), ("dl.consumer", b"projector")]),
        ("p.dead-letter", None, None, [
            ("dl.source.topic", b"p.violations"), ("dl.source.partition", b"7"), ("dl.source.offset", b"43"),
            ("dl.error", b"KeyError: 'rule_id'"), ("dl.consumer", b"projector")]),
    ]
    assert (dead.sent, dead.skipped, dead.count, dead.pending) == (2, 0, 2, 2)
    dead.flush()
    assert dead.pending == 0 and publisher.flushes == 1


def test_known_coordinates_are_counted_but_not_sent_again_and_looked_up_only_when_needed():
    publisher, looked_up = FakePublisher(), []

    def known():
        looked_up.append(1)
        return {("t", 0, 5)}

    dead = DeadLetters(publisher, "replay", topic="dl", skip=known)
    assert looked_up == []
    dead.send("t", 0, 5, b"k", b"v", None, "bad")
    dead.send("t", 0, 6, b"k", b"v", None, "bad")
    assert looked_up == [1] and [p[3][2] for p in publisher.produced] == [("dl.source.offset", b"6")]
    assert (dead.sent, dead.skipped) == (1, 1)


def test_send_message_reads_confluent_and_faust_messages():
    publisher = FakePublisher()
    dead = DeadLetters(publisher, "coordinator", topic="dl")
    confluent_like = SimpleNamespace(topic=lambda: "a", partition=lambda: 1, offset=lambda: 2, key=lambda: b"k",
                                     value=lambda: b"v", headers=lambda: None)
    faust_like = SimpleNamespace(topic="a", partition=1, offset=3, key=b"k", value=b"v",
                                 headers={"ce_type": b"t"})
    dead.send_message(confluent_like, "e")
    dead.send_message(faust_like, "e")
    assert [dict(p[3])["dl.source.offset"] for p in publisher.produced] == [b"2", b"3"]
    assert dict(publisher.produced[1][3])["ce_type"] == b"t"


# --- the projector's batch with poison in it --------------------------------------------

class Msg:
    """What confluent-kafka's consumer gives, enough for the projector."""

    def __init__(self, offset, value, topic="p.violations", partition=0, hdrs=None, key=SCAN_KEY):
        self._v = (topic, partition, offset, key, value, hdrs)

    def error(self):
        return None

    def topic(self):
        return self._v[0]

    def partition(self):
        return self._v[1]

    def offset(self):
        return self._v[2]

    def key(self):
        return self._v[3]

    def timestamp(self):
        return 1, 1_700_000_000_000 + self._v[2]  # (TIMESTAMP_CREATE_TIME, ms), as confluent-kafka gives it

    def value(self):
        return self._v[4]

    def headers(self):
        return self._v[5]


def offsets(path):
    conn = sqlite3.connect(path)
    try:
        return {(t, p): o for t, p, o in conn.execute("SELECT * FROM projector_offsets")}
    finally:
        conn.close()


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "rm.db"
    conn = connect(f"sqlite:///{path}")
    schema.create(conn)
    yield conn, path
    conn.close()


def test_poison_is_dead_lettered_and_skipped_with_the_good_records_applied(db):
    conn, path = db
    seen_at_flush = []
    publisher = FakePublisher(on_flush=lambda: seen_at_flush.append(offsets(path)))
    dead = DeadLetters(publisher, "projector", topic="dl")
    messages = [
        Msg(0, encode(violation(1))),
        Msg(1, b"not json!"),  # refused by decode_checked
        Msg(2, encode(violation(2))),
        Msg(3, encode(violation(3, value={"a": "dict"}))),  # passes the cheap check, SQLite cannot bind it
        Msg(4, encode(violation(4))),
        Msg(0, encode(violation(9, rule_id=None)), topic="p.scan-events"),
    ]
    assert apply_messages(conn, messages, dead) == 6
    assert [r[0] for r in conn.execute("SELECT violation_id FROM rm_violations ORDER BY 1")] == ["v1", "v2", "v4"]
    # every offset is done, the refused ones included, in the same transaction as the good ones
    assert offsets(path) == {("p.violations", 0): 5, ("p.scan-events", 0): 1}
    assert [(dict(p[3])["dl.source.topic"], dict(p[3])["dl.source.offset"], p[1][:9]) for p in publisher.produced] == [
        (b"p.violations", b"1", b"not json!"), (b"p.scan-events", b"0", encode(violation(9, rule_id=None))[:9]),
        (b"p.violations", b"3", encode(violation(3, value={"a": "dict"}))[:9])]
    assert b"Error binding parameter" in dict(publisher.produced[2][3])["dl.error"]
    # flushed before the offsets that skip them were committed
    assert seen_at_flush == [{}, {}] and dead.pending == 0


def test_a_big_batch_with_two_bad_records_is_halved_to_them_not_applied_one_by_one(db):
    conn, path = db
    dead = DeadLetters(FakePublisher(), "projector", topic="dl")
    bad = {377, 1500}
    messages = [Msg(i, encode(violation(i, value={"a": "dict"}) if i in bad else violation(i))) for i in range(2000)]
    statements = []
    conn.set_trace_callback(statements.append)
    assert apply_messages(conn, messages, dead) == 2000
    conn.set_trace_callback(None)
    assert dead.sent == 2 and offsets(path) == {("p.violations", 0): 2000}
    assert conn.execute("SELECT COUNT(*) FROM rm_violations").fetchone()[0] == 1998
    assert not conn.execute("SELECT 1 FROM rm_violations WHERE violation_id IN ('v377', 'v1500')").fetchall()
    savepoints = sum(s.startswith("SAVEPOINT") for s in statements)
    assert savepoints <= 4 * 11  # two halvings down to one record of 2,000 (log2 < 11 each), not 2,000
    assert sum("projector_offsets" in s for s in statements) == 1  # stored once, not per part


def test_a_database_error_is_not_blamed_on_a_record(db):
    conn, path = db
    conn.execute("DROP TABLE rm_violations")
    dead = DeadLetters(FakePublisher(), "projector", topic="dl")
    with pytest.raises(sqlite3.OperationalError):
        apply_messages(conn, [Msg(0, encode(violation(1)))], dead)
    assert dead.count == 0 and offsets(path) == {}


def test_an_apply_that_raises_on_one_lifecycle_event_skips_only_it(db):
    conn, path = db
    dead = DeadLetters(FakePublisher(), "projector", topic="dl")
    unit = {"unit_id": "u", "index": 0, "blob": "b", "record_count": 1, "counted_records": 1, "partition_key": [],
            "rule_ids": ["r"]}
    started = make_event(c.SCAN_STARTED, "nope", {"scan_id": "nope", "units": [unit], "record_total": 1,
                                                   "rules_total": 1, "started_at": "x"},
                         id="s1", source="t", workspace_id="w")  # valid, but for a scan never requested
    assert apply_messages(conn, [Msg(0, encode(started), topic="e"), Msg(1, encode(violation(1)), topic="e")],
                          dead) == 2
    assert dead.sent == 1 and offsets(path) == {("e", 0): 2}
    assert conn.execute("SELECT COUNT(*) FROM rm_violations").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM rm_processed_events").fetchone()[0] == 0  # rolled back with it
