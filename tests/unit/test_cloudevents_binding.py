"""Our records, as the CloudEvents SDK's Kafka binding reads them: structured mode (the content-type
header), every attribute and the data as we wrote them. The e2e twin reads a real scan's records
(tests/e2e/test_cloudevents_consumers.py); this one covers each way a record is encoded."""
import pyarrow as pa
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event

from services.domain import contracts as c
from services.domain.envelope import (
    CONTENT_TYPE,
    encode,
    headers,
    make_event,
    type_headers,
    with_actor,
)
from services.domain.evaluation import encoded_violations
from services.domain.ledger_chain import Chain
from services.domain.rules import VIOLATION_SCHEMA, parse_rule


def read(value: bytes, hdrs: list[tuple[str, bytes]], key: bytes = b"scan-1"):
    return from_kafka_event(KafkaMessage(headers=dict(hdrs), key=key, value=value))


def event(type_=c.SCAN_FINISHED, **data):
    return make_event(type_, "scan-1", data or {"status": "completed", "counts": [1, 2]}, id="e-1",
                      source="/scanledger/coordinator", workspace_id="ws-1", time="2026-01-02T03:04:05.678Z")


def test_every_record_says_it_is_a_structured_cloudevent():
    assert dict(headers(event())) == {"content-type": CONTENT_TYPE.encode(),
                                      "scanledger-type": c.SCAN_FINISHED.encode()}
    # no ce_ header: the SDK's from_kafka_event would take the record for binary mode
    assert not [k for k, _ in headers(event()) if k.lower().startswith("ce_")]


def test_the_sdk_reads_an_event_as_written():
    e = with_actor(event(), "token-1", "admin")
    ce = read(encode(e), headers(e))
    assert (ce.get_type(), ce.get_id(), ce.get_source(), ce.get_subject()) == \
        (c.SCAN_FINISHED, "e-1", "/scanledger/coordinator", "scan-1")
    assert ce.get_time().isoformat().replace("+00:00", "Z") == "2026-01-02T03:04:05.678000Z"
    assert ce.get_data() == e["data"]
    attributes = ce.get_attributes()
    assert (attributes["workspaceid"], attributes["actorid"], attributes["actorrole"]) == ("ws-1", "token-1", "admin")
    assert attributes["partitionkey"] == "scan-1"  # the record's key, as the binding maps it


def test_the_sdk_reads_sealed_and_bulk_encoded_events():
    chain = Chain("scan-1/unit-0")
    first = event()
    ce = read(chain.seal(first), headers(first))
    assert ce.get_data() == first["data"] and ce.get_attributes()["chainstream"] == "scan-1/unit-0"
    rule = parse_rule({"id": "r-1", "name": "Big", "type": "threshold", "severity": "high",
                       "params": {"field": "amount", "op": "gt", "value": 1}})
    violations = pa.table({"row": [3], "key": ["3"], "account": ["A\"1"], "value": ["9"], "window": [None],
                           "transaction_id": [None], "amount": ["9"], "timestamp": ["é"]}, schema=VIOLATION_SCHEMA)
    (encoded,) = encoded_violations(event(), {"scan_id": "scan-1", "unit_id": "scan-1.u0"}, rule, violations)
    ce = read(chain.seal_all([encoded])[0], type_headers(c.VIOLATION_DETECTED))
    data = ce.get_data()
    assert (ce.get_type(), ce.get_id()) == (c.VIOLATION_DETECTED, data["violation_id"])
    assert (data["rule_id"], data["record_index"], data["signature"], data["window"]) == ("r-1", 3, 'r-1:A"1', None)
    assert data["record"] == {"account": 'A"1', "amount": "9", "timestamp": "é"}
