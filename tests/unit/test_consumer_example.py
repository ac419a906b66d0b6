"""examples/consumer.py reads a record as written now and as written before the content-type and
scanledger-type headers (only `ce_type`, which the SDK alone would take for binary mode). Against
the real broker: tests/e2e/test_cloudevents_consumers.py."""
import importlib.util
from pathlib import Path

from confluent_kafka import Message

from services.domain import contracts as c
from services.domain.envelope import encode, headers, make_event

PATH = Path(__file__).resolve().parents[2] / "examples" / "consumer.py"
spec = importlib.util.spec_from_file_location("consumer_example", PATH)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


VIOLATION = make_event(c.VIOLATION_DETECTED, "scan-1", {
    "violation_id": "v-1", "scan_id": "scan-1", "unit_id": "u-1", "rule_id": "big", "rule_name": "Big",
    "rule_type": "threshold", "severity": "high", "account": "ACC-1", "record_index": 4, "record_key": "k",
    "value": "9500", "window": None, "signature": "big:ACC-1"}, id="v-1", source="scanledger/evaluator",
    workspace_id="default", time="2026-01-02T03:04:05.678Z")


def test_the_example_reads_records_as_written_now_and_before():
    for hdrs in (headers(VIOLATION), [("ce_type", VIOLATION["type"].encode())]):
        event = example.cloudevent(Message(topic="scanledger.violations", partition=0, offset=7,
                                           key=b"scan-1", value=encode(VIOLATION), headers=hdrs))
        assert (event.get_id(), event.get_data()) == ("v-1", VIOLATION["data"])
        assert example.line(event) == ("2026-01-02T03:04:05.678000+00:00 scan=scan-1 id=v-1 violation big (high)"
                                       " account=ACC-1 record=4 signature=big:ACC-1")


def test_the_settings_are_the_ones_scan_ledger_reads(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("SCANLEDGER_TOPIC_PREFIX", raising=False)
    defaults = example.options([])
    assert (defaults.bootstrap, defaults.prefix, defaults.from_beginning) == ("127.0.0.1:9092", "scanledger", False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9093")
    monkeypatch.setenv("SCANLEDGER_TOPIC_PREFIX", "prod")
    assert (example.options([]).bootstrap, example.options([]).prefix) == ("kafka:9093", "prod")


def test_a_secured_kafkas_settings_are_librdkafkas_of_the_same_names():
    assert example.security({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "key",
                             "KAFKA_SASL_PASSWORD": "secret", "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem"}) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "key",
        "sasl.password": "secret", "ssl.ca.location": "/etc/ca.pem"}
    assert example.security({}) == {}
