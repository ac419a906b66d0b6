"""GET /metrics and /healthz on the real system: a compliance scan shows in the figures."""
from __future__ import annotations

import time

import httpx
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from harness import data
from services.adapters.db import connect
from services.adapters.kafka_admin import watermarks
from services.settings import Settings, Topics
from tests.e2e.helpers import all_violations, policy, scan_once


def scrape(system) -> dict[str, list]:
    """name -> samples of an unauthenticated scrape (as Prometheus scrapes)."""
    r = httpx.get(f"{system.url}/metrics", timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def value(families: dict, name: str, sample: str | None = None, **labels) -> float:
    return sum(s.value for s in families.get(name, []) if (sample is None or s.name == sample)
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_a_scan_shows_in_the_metrics_and_health(system, api):
    before = scrape(system)
    pol = policy(api, name="metrics")
    rows = data.transactions(1500, seed=11)
    scan_id, scan = scan_once(api, rows, pol["id"])
    assert scan["status"] == "completed", scan

    after = scrape(system)
    kind = {"kind": "compliance"}
    assert value(after, "scanledger_scans", **kind, status="completed") == \
        value(before, "scanledger_scans", **kind, status="completed") + 1
    found = len(all_violations(api, scan_id))
    assert found == scan["violation_count"] > 0
    assert value(after, "scanledger_violations", **kind) - value(before, "scanledger_violations", **kind) == found
    # the totals are the API's: every run listed, anomalies summed (findings for sensitive scans)
    runs, page = [], 1
    while True:
        body = api.get("/api/operations", params={"page": page, "size": 1000}).json()
        runs += body["items"]
        if page >= body["pages"]:
            break
        page += 1
    assert value(after, "scanledger_scans") >= len(runs) > 0
    # durations: the scan's observed, and its units'
    hist = "scanledger_scan_duration_seconds"
    assert value(after, hist, f"{hist}_count", **kind) == value(before, hist, f"{hist}_count", **kind) + 1
    assert value(after, hist, f"{hist}_sum", **kind) > value(before, hist, f"{hist}_sum", **kind)
    unit = "scanledger_unit_duration_seconds"
    assert value(after, unit, f"{unit}_count") >= value(before, unit, f"{unit}_count") + 3  # 1500 records / 700
    # HTTP latency of this process, by route template
    http = "scanledger_http_request_duration_seconds"
    assert value(after, http, f"{http}_count", route="/api/scan/{id}", method="GET") > 0
    assert value(after, http, f"{http}_count", route="/api/upload", method="POST", status="201") > 0
    assert all("scan_id" not in s.labels and "workspace_id" not in s.labels for f in after.values() for s in f)

    # the projector catches up: lag 0 on every topic, in /metrics and /healthz
    while True:
        now = scrape(system)
        lags = [s for s in now["scanledger_consumer_lag"] if s.labels["component"] == "projector"]
        if value(now, "scanledger_kafka_up") == 1 and lags and all(s.value == 0 for s in lags):
            break
        time.sleep(0.2)
    assert {s.labels["topic"] for s in lags} >= set(_topics(system, "scan-events", "violations"))
    while True:
        time.sleep(1.1)  # past the /healthz cache
        health = httpx.get(f"{system.url}/healthz", timeout=30).json()
        if health["lag"] and health["lag"]["projector"]["total"] == 0:
            break
    assert health["status"] == "ok"
    assert health["broker"] and health["worker"] and health["projector"]
    assert set(health["lag"]) == {"worker", "projector"}
    assert set(health["lag"]["worker"]["topics"]) == set(_topics(system, "commands", "scan-events", "work"))


def _topics(system, *names: str) -> list[str]:
    prefix = system.env["SCANLEDGER_TOPIC_PREFIX"]
    return [f"{prefix}.{name}" for name in names]


def test_the_projector_mirrors_its_offsets_to_kafka(system, api):
    """The projector's group shows in Kafka's tools: its committed offsets are the database's."""
    pol = policy(api, name="offsets")
    _scan_id, scan = scan_once(api, data.transactions(800, seed=12), pol["id"])
    assert scan["status"] == "completed", scan
    group = f"{system.env['SCANLEDGER_TOPIC_PREFIX']}-projector"
    while True:
        stored = _stored_offsets(system)
        committed = _committed(system, group, list(stored))
        if stored and committed == stored:
            break
        time.sleep(0.2)
    assert any(topic.endswith(".violations") and offset > 0 for (topic, _p), offset in committed.items())


def _stored_offsets(system) -> dict[tuple[str, int], int]:
    conn = connect(system.db_url)
    try:
        return {(r["topic"], r["partition"]): r["next_offset"]
                for r in conn.execute("SELECT topic, partition, next_offset FROM projector_offsets")}
    finally:
        conn.close()


def _committed(system, group: str, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": system.env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": group,
                         "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=30)
        return {(tp.topic, tp.partition): tp.offset for tp in got if tp.offset >= 0}
    finally:
        consumer.close()


def test_a_sensitive_scans_findings_show_in_the_metrics(system, api):
    """scanledger_sensitive_findings grows by the findings count GET /api/v1/scans/{id} gives."""
    lake = system.datastore_root / "metrics-lake"
    lake.mkdir(exist_ok=True)
    (lake / "people.csv").write_text("name,email\nAda,ada@example.com\nBob,bob@example.org\nCy,none\n")
    before = scrape(system)
    r = api.post("/api/v1/connectors", json={"name": "Metrics lake", "type": "local_dir",
                                             "config": {"path": "metrics-lake"}})
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/scans/parallel", json={"connectors": [r.json()["data"]["id"]], "type": "full"})
    assert r.status_code == 201, r.text
    scan_id = r.json()["data"]["scan_id"]
    while (done := api.get(f"/api/v1/scans/{scan_id}").json()["data"])["status"] in ("queued", "running"):
        time.sleep(0.1)
    found = done["progress"]["findings_count"]
    assert found >= 2, done
    after = scrape(system)
    kind = {"kind": "sensitive"}
    assert value(after, "scanledger_sensitive_findings", **kind) - \
        value(before, "scanledger_sensitive_findings", **kind) == found
    assert value(after, "scanledger_scans", **kind, status=done["status"]) == \
        value(before, "scanledger_scans", **kind, status=done["status"]) + 1


def test_the_watermarks_read_two_requests_at_a_time_are_each_partitions_own(system, api):
    """kafka_admin.watermarks (what /healthz, /metrics and the projector's watch read: one ListOffsets request
    for the partitions' starts, one for their ends) answers what get_watermark_offsets does a partition at a time."""
    _scan_id, scan = scan_once(api, data.transactions(600, seed=13), policy(api, name="watermarks")["id"])
    assert scan["status"] == "completed", scan
    prefix = system.env["SCANLEDGER_TOPIC_PREFIX"]
    settings = Settings.from_env(kafka_bootstrap=system.env["KAFKA_BOOTSTRAP_SERVERS"], topics=Topics(prefix))
    names = _topics(system, "commands", "scan-events", "work", "violations", "findings", "dead-letter")
    consumer = Consumer({"bootstrap.servers": system.env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "watermarks-test"})
    try:
        metadata = consumer.list_topics(timeout=30)
        partitions = [(t, p) for t in names if t in metadata.topics for p in metadata.topics[t].partitions]

        def one_at_a_time() -> dict:
            return {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30) for t, p in partitions}

        while True:  # the same answer before and after: nothing was written in between
            before, batched, after = one_at_a_time(), watermarks(settings, names), one_at_a_time()
            if before == after:
                break
    finally:
        consumer.close()
    assert len(partitions) > 40 and any(high > low for low, high in before.values())
    assert batched == before
