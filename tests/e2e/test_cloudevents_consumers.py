"""A downstream consumer's view of a real scan: the records on the real broker, read with
confluent-kafka and converted with the CloudEvents SDK's Kafka binding, say what the API says.
Waits poll until the system answers: no time limits."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
import yaml
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from jsonschema import Draft202012Validator

from harness import data
from services.domain import contracts as c
from services.domain.envelope import CONTENT_TYPE, decode
from services.domain.vocabulary import COORDINATOR_SOURCE as COORDINATOR
from services.domain.vocabulary import EVALUATOR_SOURCE as EVALUATOR
from services.settings import Topics
from tests.e2e.helpers import all_violations, confirm, ok, policy, run, until, upload
from tests.e2e.monitor_fixtures import in_workspace

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCHEMAS = DOCS / "schemas"
# every topic a scan writes to (the dead-letter topic holds others' records, headers and all)
WRITTEN = ("commands", "scan_events", "work", "violations", "findings", "config")


def ends(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    meta = consumer.list_topics(timeout=30).topics
    return {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)[1]
            for t in topics for p in meta[t].partitions}


def records_between(consumer: Consumer, start: dict, end: dict) -> list:
    """Every record from the `start` offsets up to the `end` ones, read with assign() (no group)."""
    wanted = {tp: (start.get(tp, 0), high) for tp, high in end.items() if high > start.get(tp, 0)}
    consumer.assign([TopicPartition(t, p, low) for (t, p), (low, _) in wanted.items()])
    out, left = [], {tp: high - low for tp, (low, high) in wanted.items()}
    while any(left.values()):
        for m in consumer.consume(num_messages=1000, timeout=0.5):
            assert m.error() is None, m.error()
            tp = (m.topic(), m.partition())
            if m.offset() < wanted[tp][1]:
                out.append(m)
                left[tp] -= 1
    consumer.unassign()
    return out


def cloudevent(m):
    """What a consumer using the SDK gets of a confluent-kafka message."""
    return from_kafka_event(KafkaMessage(headers=dict(m.headers() or []), key=m.key(), value=m.value()))


@pytest.fixture(scope="module")
def scans(system):
    """A compliance scan and a sensitive-data scan, and every record written while they ran."""
    topics = Topics(system.env["SCANLEDGER_TOPIC_PREFIX"])
    names = [getattr(topics, name) for name in WRITTEN]
    consumer = Consumer({"bootstrap.servers": system.env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "ce-reader",
                         "enable.auto.commit": False})
    try:
        before = ends(consumer, names)
        with system.client() as api:
            rows = data.transactions(1500, seed=25)
            up = upload(api, data.to_csv(rows))
            compliance_id = run(api, policy(api, name="CloudEvents")["id"], up["upload_id"],
                                confirm(api, up["upload_id"])["mapping_id"])
            done = until(lambda: (d := api.get(f"/api/scan/{compliance_id}").json())["status"] not in ("running",)
                         and d)
            assert done["status"] == "completed", done
            violations = all_violations(api, compliance_id)
        lake = system.datastore_root / "ce-lake"
        lake.mkdir()
        for i in range(3):
            (lake / f"ticket_{i}.txt").write_text(f"ticket {i}: mail jane.doe{i}@example.com\n")
        with in_workspace(system, "CloudEvents readers") as ws:
            conn = ok(ws.admin.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                 "config": {"path": "ce-lake"}}), 201)
            body = {"connectors": [conn["id"]], "type": "full", "options": {"file_types": ["txt"]}}
            sensitive_id = ok(ws.member.post("/api/v1/scans/parallel", json=body), 201)["scan_id"]
            until(lambda: ok(ws.admin.get(f"/api/v1/scans/{sensitive_id}"))["status"] not in ("queued", "running"))
            findings = ok(ws.viewer.get(f"/api/v1/scans/{sensitive_id}/findings", params={"limit": 1000}))
        written = records_between(consumer, before, ends(consumer, names))
    finally:
        consumer.close()
    return {"topics": topics, "compliance": compliance_id, "violations": violations, "sensitive": sensitive_id,
            "findings": findings, "records": written}


def test_every_record_a_scan_writes_is_a_structured_cloudevent(scans):
    records = scans["records"]
    assert {m.topic() for m in records} == {getattr(scans["topics"], name) for name in WRITTEN}
    for m in records:
        assert dict(m.headers())["content-type"] == CONTENT_TYPE.encode(), (m.topic(), m.headers())
        event, body = cloudevent(m), decode(m.value())
        assert (event.get_type(), event.get_id(), event.get_subject()) == (body["type"], body["id"], body["subject"])
        assert event.get_data() == body["data"]
        assert dict(m.headers())["scanledger-type"] == body["type"].encode()


def test_every_event_a_scan_writes_is_valid_for_its_published_schema(scans):
    validators = {p.stem: Draft202012Validator(orjson.loads(p.read_bytes())) for p in SCHEMAS.glob("*.json")}
    events = [decode(m.value()) for m in scans["records"]]
    for event in events:
        validators[event["type"]].validate(event["data"])
    assert {c.SCAN_REQUESTED, c.WORK_UNIT, c.VIOLATION_DETECTED, c.FINDING_DETECTED, c.SCAN_FINISHED,
            c.CONFIG_CHANGED, c.RUN_SCAN} <= {e["type"] for e in events}


def events_of(scans, topic: str, subject: str) -> list:
    return [e for e in (cloudevent(m) for m in scans["records"] if m.topic() == topic) if e.get_subject() == subject]


def test_the_sdk_reads_each_violation_as_the_api_shows_it(scans):
    events = {e.get_id(): e for e in events_of(scans, scans["topics"].violations, scans["compliance"])}
    assert scans["violations"] and set(events) == {v["id"] for v in scans["violations"]}
    for v in scans["violations"]:
        event = events[v["id"]]
        assert (event.get_type(), event.get_source(), event.get_subject()) == \
            (c.VIOLATION_DETECTED, EVALUATOR, scans["compliance"])
        d = event.get_data()
        assert d["violation_id"] == v["id"]
        for key in ("scan_id", "rule_id", "rule_name", "rule_type", "severity", "account", "record_index",
                    "record_key", "signature"):
            assert d[key] == v[key], (key, d, v)


def test_the_sdk_reads_each_finding_as_the_api_shows_it(scans):
    events = {e.get_data()["finding_id"]: e for e in events_of(scans, scans["topics"].findings, scans["sensitive"])}
    assert len(scans["findings"]) == 3 and set(events) == {f["finding_id"] for f in scans["findings"]}
    for f in scans["findings"]:
        event = events[f["finding_id"]]
        assert (event.get_type(), event.get_source(), event.get_subject()) == \
            (c.FINDING_DETECTED, EVALUATOR, scans["sensitive"])
        d = event.get_data()
        assert (d["connector_id"], d["file"], d["detector"], d["family"], d["confidence"], d["masked"]) == \
            (f["connector_id"], f["file"], f["detector"], f["family"], f["confidence"], f["masked_sample"])
        assert {"start": d["start"], "end": d["end"]} == f["offset"] and d["line"] == f["location"]["line"]


def test_the_sdk_reads_the_scans_lifecycle(scans):
    for scan_id in (scans["compliance"], scans["sensitive"]):
        lifecycle = [e for e in events_of(scans, scans["topics"].scan_events, scan_id) if e.get_source() == COORDINATOR]
        types = [e.get_type() for e in lifecycle]
        assert types[0] == c.SCAN_REQUESTED and types[-1] == c.SCAN_FINISHED and c.SCAN_STARTED in types, types
        assert lifecycle[-1].get_data()["status"] == "completed"
        assert all(e.get_attributes()["partitionkey"] == scan_id for e in lifecycle)  # keyed by scan: in order


def test_each_event_is_on_the_topic_docs_asyncapi_yaml_names_for_its_type(scans):
    channels = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())["channels"]
    on = {getattr(scans["topics"], name): set(channel["messages"]) for name, channel in channels.items()}
    misplaced = {(m.topic(), decode(m.value())["type"]) for m in scans["records"]} - \
        {(topic, type_) for topic, types in on.items() for type_ in types}
    assert misplaced == set()


def test_the_example_consumer_prints_what_the_scans_found(scans, system, tmp_path):
    """examples/consumer.py as the README runs it: its own process, in another directory, with
    nothing of the project on its path, configured by the settings it documents."""
    found = [*events_of(scans, scans["topics"].violations, scans["compliance"]),
             *events_of(scans, scans["topics"].findings, scans["sensitive"])]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": system.env["KAFKA_BOOTSTRAP_SERVERS"],
            "SCANLEDGER_TOPIC_PREFIX": system.env["SCANLEDGER_TOPIC_PREFIX"]}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "consumer.py"), "--from-beginning",
                          "--group", f"example-{uuid.uuid4().hex[:8]}", "--scan", scans["compliance"],
                          "--scan", scans["sensitive"], "--count", str(len(found))],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert {re.search(r" id=(\S+) ", x).group(1) for x in lines} == {e.get_id() for e in found}
    assert len(lines) == len(found)
    for v in scans["violations"]:
        assert any(f"id={v['id']} violation {v['rule_id']} ({v['severity']})" in x for x in lines), v
    for f in scans["findings"]:
        assert any(f"finding {f['detector']} ({f['family']}" in x and x.endswith(f["masked_sample"]) for x in lines)


def test_the_example_consumer_skips_a_record_that_is_not_a_cloudevent_and_goes_on(scans, system, tmp_path):
    """Someone else's bytes on the violations topic (as tests/e2e/test_dead_letters.py plants): the example
    names it on stderr and goes on to print the events after it, instead of dying on it."""
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    violations = f"{prefix}.violations"
    source = next(m for m in scans["records"] if m.topic() == scans["topics"].violations)
    bootstrap = system.env["KAFKA_BOOTSTRAP_SERVERS"]
    admin = AdminClient({"bootstrap.servers": bootstrap})  # held: a collected client cancels its futures
    topics = [NewTopic(f"{prefix}.{name}", 1, 1) for name in ("violations", "findings")]
    for future in admin.create_topics(topics).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(violations, value=b"\x00 not an event", key=b"k", partition=0)  # offset 0
    producer.produce(violations, value=source.value(), key=source.key(), headers=source.headers(), partition=0)
    assert producer.flush(30) == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SCANLEDGER_TOPIC_PREFIX": prefix}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "consumer.py"), "--from-beginning",
                          "--group", f"example-{uuid.uuid4().hex[:8]}", "--count", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"skipped {violations}[0]@0: not a CloudEvent" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout.splitlines() == [line for line in run.stdout.splitlines() if " violation " in line]
    assert f"id={decode(source.value())['id']} violation" in run.stdout
