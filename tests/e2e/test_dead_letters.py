"""Poison records on the event topics mid-scan: the scan still completes exactly, the projector
goes on, the dead letters are counted and listed with their source offsets, and replay skips
the same records (equal to live) without sending them to the dead-letter topic again."""
import re
import time

import httpx
from confluent_kafka import Producer

from harness import data, databases
from services.domain import contracts as c
from services.domain.envelope import encode, make_event
from services.stores.read_models import TABLES
from tests.e2e.helpers import all_violations, confirm, policy, rows, upload, wait_settled


def produce(bootstrap: str, records: list[tuple[str, bytes, bytes, list]]) -> list[tuple[str, int, int]]:
    """Produce raw records (topic, key, value, headers); returns where each landed."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all"})
    landed: list = [None] * len(records)

    def report(i):
        def on_delivery(err, msg):
            assert err is None, err
            landed[i] = (msg.topic(), msg.partition(), msg.offset())
        return on_delivery

    for i, (topic, key, value, hdrs) in enumerate(records):
        producer.produce(topic, key=key, value=value, headers=hdrs, on_delivery=report(i))
    assert producer.flush(30) == 0
    return landed


def poison(scan_id: str, violations: str, scan_events: str) -> list[tuple[str, bytes, bytes, list]]:
    key = scan_id.encode()
    bad_violation = make_event(c.VIOLATION_DETECTED, scan_id, {"violation_id": "v-bad", "scan_id": scan_id},
                               id="v-bad", source="test", workspace_id="default")
    unbindable = make_event(c.VIOLATION_DETECTED, scan_id, {
        "violation_id": "v-unbindable", "scan_id": scan_id, "unit_id": "u", "rule_id": "big", "rule_name": "x",
        "rule_type": "threshold", "severity": "high", "account": "ACC-1", "record_index": 0, "record_key": "k",
        "value": {"not": "a string"}, "window": None, "signature": "big:ACC-1"},
        id="v-unbindable", source="test", workspace_id="default")  # passes the cheap check, apply raises
    bad_finish = make_event(c.SCAN_FINISHED, scan_id, {"scan_id": scan_id, "status": "completed",
                                                       "record_count": "lots", "violation_count": 0},
                            id="f-bad", source="test", workspace_id="default")
    unit = {"unit_id": "ghost-u", "index": 0, "blob": "b", "record_count": 1, "counted_records": 1,
            "partition_key": [], "rule_ids": ["big"]}
    ghost_start = make_event(c.SCAN_STARTED, scan_id, {"scan_id": "ghost-scan", "units": [unit], "record_total": 1,
                                                       "rules_total": 1, "started_at": "2024-01-01T00:00:00Z"},
                             id="s-ghost", source="test", workspace_id="default")  # valid; its scan was never requested
    typed = lambda e: [("ce_type", e["type"].encode())]  # noqa: E731
    return [
        (violations, key, b"not json at all", None),  # the 15 bytes of issue 9
        (violations, key, encode(bad_violation), typed(bad_violation)),
        (violations, key, encode(unbindable), typed(unbindable)),
        (scan_events, key, b"not json at all", None),
        (scan_events, key, encode(bad_finish), typed(bad_finish)),
        (scan_events, key, encode(ghost_start), typed(ghost_start)),
    ]


def projected_past(path, landed, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conn = databases.connect_read(path)
        try:
            done = {(t, p): o for t, p, o in conn.execute("SELECT * FROM projector_offsets")}
        finally:
            conn.close()
        if all(done.get((t, p), 0) > o for t, p, o in landed):
            return
        time.sleep(0.2)
    raise AssertionError(f"the projector did not get past {landed}")


def health(system) -> dict:
    return httpx.get(f"{system.url}/healthz", timeout=10).json()


def test_poison_records_are_dead_lettered_and_everything_goes_on(api, system, kafka, tmp_path):
    prefix = system.env["SCANLEDGER_TOPIC_PREFIX"]
    violations, scan_events = f"{prefix}.violations", f"{prefix}.scan-events"
    pol = policy(api, name="poisoned")
    rows_in = data.transactions(3000, seed=31)
    want = data.expected(rows_in)
    total = sum(len(v) for v in want.values())
    up = upload(api, data.to_csv(rows_in))
    mapping = confirm(api, up["upload_id"])
    r = api.post("/api/scan/run", json={"policy_id": pol["id"], "upload_id": up["upload_id"],
                                        "mapping_id": mapping["mapping_id"]}, headers={"Prefer": "respond-async"})
    assert r.status_code == 200, r.text
    scan_id = r.json()["scan_id"]
    deadline = time.monotonic() + 30
    while api.get(f"/api/scan/{scan_id}").json()["status"] == "pending":  # the ledger has the scan
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # mid-scan, on the scan's own partitions (same key), among its events
    landed = produce(kafka, poison(scan_id, violations, scan_events))

    scan = wait_settled(api, scan_id)
    assert scan["status"] == "completed", scan
    assert scan["violation_count"] == total and scan["record_count"] == 3000
    assert scan["rules_processed"] == scan["rules_total"] == len(data.RULES)
    assert scan["compliance_score"] == data.score(3000, data.by_severity(want))
    found = all_violations(api, scan_id)
    assert len(found) == total and not {"v-bad", "v-unbindable"} & {v["id"] for v in found}
    projected_past(system.db_url, landed)
    assert system.processes["projector"].poll() is None, system.logs()

    deadline = time.monotonic() + 30
    while (body := health(system))["dead_letters"] is None or body["dead_letters"] < len(landed):
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
    assert body["status"] == "ok" and body["projector"] is True

    listed = system.cli("dead-letters", "list", "--limit", "0").stdout
    entries = re.findall(r"^(\S+)\[(\d+)\]@(\d+)  consumer=(\S+)  error=(.*)$", listed, re.M)
    # (the streams worker may refuse some of them too, as dl.consumer=coordinator)
    mine = [(t, int(p), int(o), who, error) for t, p, o, who, error in entries
            if (t, int(p), int(o)) in landed and who in ("projector", "replay")]
    assert sorted((t, p, o) for t, p, o, _, _ in mine) == sorted(landed)  # each exactly once
    assert {who for *_, who, _ in mine} == {"projector"}
    errors = {(t, o): error for t, _, o, _, error in mine}
    assert errors[landed[0][0], landed[0][2]].startswith("not JSON")
    assert errors[landed[1][0], landed[1][2]].startswith("data lacks ")
    assert "Error binding parameter" in errors[landed[2][0], landed[2][2]]
    assert errors[landed[4][0], landed[4][2]].startswith("invalid ScanFinished: ")
    assert errors[landed[5][0], landed[5][2]].startswith("TypeError")
    assert "b'not json at all'" in listed

    target = databases.scratch(tmp_path, "replay")
    out = system.cli("replay", "--into", target)
    assert "replayed" in out.stdout
    for table in TABLES:
        if table != "projector_offsets":
            assert rows(target, table) == rows(system.db_url, table), table
    # the records replay refused again were on the dead-letter topic already: not sent twice
    again = system.cli("dead-letters", "list", "--limit", "0").stdout
    entries = re.findall(r"^(\S+)\[(\d+)\]@(\d+)  consumer=(\S+)", again, re.M)
    assert sorted((t, int(p), int(o)) for t, p, o, who in entries
                  if (t, int(p), int(o)) in landed and who in ("projector", "replay")) == sorted(landed)
