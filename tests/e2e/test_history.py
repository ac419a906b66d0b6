"""The ledger of one scan (issue 22): GET /api/scans/{id}/history and `scanledger history`, and a scan as
of an instant, on the real system. A compliance scan aborted mid-run, resumed, one of its violations
dismissed and the scan rerun; a monitor scan: each history holds every command and event of the scan
in log order, the token id and role of whoever caused each command (never the token), pages with a
cursor, and equals what `scanledger history` reads from the log itself. What GET /api/scan/{id} said
at instants of the scan's life (recorded as it went) is what `?as_of=` those instants says later,
computed from the log."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import data, databases
from services.domain import contracts as c
from services.domain.partitioning import partition_of
from tests.e2e.helpers import confirm, upload
from tests.e2e.monitor_fixtures import in_workspace, wait_finished
from tests.e2e.test_operations import HEAVY_RULES, start_compliance, wait_result


def history(client, scan_id, of: str | None = None, **params) -> list[dict]:
    """Every item, page after page (the cursor of one page gives the next); `of`: the scan a run id names."""
    items, cursor = [], None
    while True:
        r = client.get(f"/api/scans/{scan_id}/history", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scan_id"] == (of or scan_id)
        items += body["items"]
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            return items


def settled_answer(client, path: str) -> tuple[dict, str]:
    """The answer once two reads a second apart agree (nothing of the scan still arriving), and an instant
    just after them, as an ISO 8601 time."""
    before = client.get(path).json()
    while True:
        time.sleep(1)
        now = client.get(path).json()
        if now == before:
            return now, datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        before = now


def types(items) -> list[str]:
    return [i["type"] for i in items]


def from_the_log(system, scan_id) -> list[dict]:
    out = system.cli("history", scan_id, "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def ws(system):
    with in_workspace(system, "History") as ws:
        tokens = ws.admin.get("/api/tokens").json()["items"]
        ws.token = {t["role"]: t["id"] for t in tokens}
        yield ws


@pytest.fixture(scope="module")
def aborted_resumed_rerun(ws):
    """A heavy compliance scan aborted under way by the Admin, resumed by the Member, a violation
    dismissed, then the scan rerun."""
    a, m = ws.admin, ws.member
    heavy = a.post("/api/policies", json={"name": "heavy", "rules": HEAVY_RULES}).json()
    up = upload(a, data.to_csv(data.transactions(20_000, seed=22)))
    mapping = confirm(a, up["upload_id"])
    before_it = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    scan_id, op = start_compliance(a, heavy["id"], up, mapping)
    while a.get(f"/api/operations/{op}").json()["status"]["anomalies_identified"] == 0:  # under way
        time.sleep(0.02)
    path = f"/api/scan/{scan_id}"
    said = []  # (path, what GET said, an instant just after)
    assert a.put(f"/api/operations/abort/{op}").status_code == 200
    wait_result(a, op, ("aborted",))
    said.append((path, *settled_answer(a, path)))
    r = m.put(f"/api/operations/run/{op}")
    assert r.status_code == 200, r.text
    assert wait_result(a, op)["result"] == "success"
    said.append((path, *settled_answer(a, path)))
    violation = a.get(f"/api/scan/{scan_id}/violations", params={"size": 1}).json()["items"][0]
    assert m.patch(f"/api/violations/{violation['id']}", json={"status": "dismissed"}).status_code == 200
    said.append((path, *settled_answer(a, path)))
    r = a.put(f"/api/operations/rerun/{op}")
    assert r.status_code == 200, r.text
    rerun = r.json()
    assert wait_result(a, rerun["id"])["result"] == "success"
    rerun_scan = a.get(f"/api/operations/{rerun['id']}").json()["scan_id"]
    said.append((f"/api/scan/{rerun_scan}", *settled_answer(a, f"/api/scan/{rerun_scan}")))
    return {"scan_id": scan_id, "op": op, "violation": violation["id"], "rerun": rerun, "said": said,
            "before": before_it}


def test_a_compliance_scans_history_holds_every_command_and_event_with_its_actor(ws, aborted_resumed_rerun):
    run = aborted_resumed_rerun
    items = history(ws.viewer, run["scan_id"])  # a read: the Viewer may
    kinds = types(items)
    assert kinds[:3] == [c.RUN_SCAN, c.SCAN_REQUESTED, c.SCAN_STARTED]
    for before, after in ((c.RUN_SCAN, c.ABORT_SCAN), (c.ABORT_SCAN, c.SCAN_ABORTED), (c.SCAN_ABORTED, c.RESUME_SCAN),
                          (c.RESUME_SCAN, c.SCAN_RESUMED), (c.SCAN_RESUMED, c.SCAN_FINISHED),
                          (c.SCAN_FINISHED, c.CHANGE_VIOLATION_STATUS),
                          (c.CHANGE_VIOLATION_STATUS, c.VIOLATION_STATUS_CHANGED)):
        assert kinds.index(before) < kinds.index(after), (before, after, kinds)
    assert kinds.count(c.SCAN_FINISHED) == 1 and c.UNIT_COMPLETED in kinds
    by_type = {i["type"]: i for i in items}
    assert by_type[c.RUN_SCAN]["actor"] == {"token_id": ws.token["Admin"], "role": "Admin"}
    assert by_type[c.ABORT_SCAN]["actor"] == {"token_id": ws.token["Admin"], "role": "Admin"}
    assert by_type[c.RESUME_SCAN]["actor"] == {"token_id": ws.token["Member"], "role": "Member"}
    assert by_type[c.CHANGE_VIOLATION_STATUS]["actor"] == {"token_id": ws.token["Member"], "role": "Member"}
    assert by_type[c.CHANGE_VIOLATION_STATUS]["data"]["violation_id"] == run["violation"]
    assert by_type[c.SCAN_REQUESTED]["actor"] is None and by_type[c.SCAN_REQUESTED]["source"]  # the system decided
    assert by_type[c.RUN_SCAN]["data"]["policy"]["rules"] == HEAVY_RULES or \
        [r["id"] for r in by_type[c.RUN_SCAN]["data"]["policy"]["rules"]] == [r["id"] for r in HEAVY_RULES]
    # the rerun is in this history too, and the rerun's own history starts with the same command
    reruns = [i for i in items if i["type"] == c.RUN_SCAN and i["data"].get("rerun_of") == run["scan_id"]]
    assert len(reruns) == 1
    rerun_items = history(ws.admin, reruns[0]["data"]["scan_id"])
    assert rerun_items[0]["id"] == reruns[0]["id"] and types(rerun_items)[-1] == c.SCAN_FINISHED
    # positions: one partition per topic for the scan, offsets rising along each topic
    for topic in {i["position"]["topic"] for i in items if i["data"].get("scan_id") == run["scan_id"]
                  and not i["data"].get("rerun_of")}:
        mine = [i["position"] for i in items if i["position"]["topic"] == topic and i["id"] != reruns[0]["id"]]
        assert len({p["partition"] for p in mine}) == 1
        assert [p["offset"] for p in mine] == sorted(p["offset"] for p in mine)
    assert "token" not in json.dumps(items).replace("token_id", "")  # ids of tokens, never a token


def test_the_history_pages_filters_and_stays_in_its_workspace(ws, system, aborted_resumed_rerun):
    scan_id, op = aborted_resumed_rerun["scan_id"], aborted_resumed_rerun["op"]
    everything = history(ws.admin, scan_id)
    assert history(ws.admin, scan_id, limit=3) == everything  # pages of 3, cursor to cursor
    assert history(ws.admin, str(op), of=scan_id) == everything  # by its run id too
    commands = history(ws.admin, scan_id, type=[c.ABORT_SCAN, c.RESUME_SCAN])
    assert types(commands) == [c.ABORT_SCAN, c.RESUME_SCAN]
    for params, field in (({"limit": "0"}, "limit"), ({"cursor": "not-a-cursor"}, "cursor"),
                          ({"type": "scanledger.nothing.v1"}, "type"), ({"since": "yesterday"}, "since")):
        r = ws.admin.get(f"/api/scans/{scan_id}/history", params=params)
        assert r.status_code == 400 and r.json()["details"][0]["path"] == [field], r.text
    with system.client() as other_workspace:
        r = other_workspace.get(f"/api/scans/{scan_id}/history")
        assert r.status_code == 404 and r.json()["message"] == "Scan not found"
    assert ws.admin.get("/api/scans/no-such-scan/history").status_code == 404


def test_the_history_from_the_log_is_the_apis(system, ws, aborted_resumed_rerun):
    scan_id = aborted_resumed_rerun["scan_id"]
    api = history(ws.admin, scan_id)
    log = from_the_log(system, scan_id)
    assert [e["id"] for e in log] == [i["id"] for i in api]
    assert [e["position"] for e in log] == [f"{i['position']['topic']}[{i['position']['partition']}]@"
                                            f"{i['position']['offset']}" for i in api]
    assert all(e.get("actorid") == (i["actor"] or {}).get("token_id") for e, i in zip(log, api, strict=True))


def test_a_monitor_scans_history(system, ws):
    root = system.datastore_root / "history-lake"
    root.mkdir()
    (root / "a.csv").write_text("x\n1\n2\n3\n")
    store = ws.admin.post("/api/datastores", json={"name": "Lake", "type": "local_dir", "path": root.name}).json()
    r = ws.admin.post(f"/api/datastores/{store['id']}/sync")
    sync_id = r.json()["scan_id"]
    wait_finished(ws.admin, sync_id)
    asset = ws.admin.get("/api/assets", params={"datastore": store["id"]}).json()["items"][0]
    assert ws.admin.post(f"/api/assets/{asset['id']}/monitors", json={
        "name": "Rows", "type": "record_count", "params": {"min": 1}}).status_code == 201
    execution = ws.member.post("/api/scan/run").json()["data"]["executionId"]
    wait_finished(ws.admin, execution)
    items = history(ws.admin, execution)
    kinds = types(items)
    assert [t for t in kinds if t != c.UNIT_PROGRESSED] == [c.RUN_SCAN, c.SCAN_REQUESTED, c.SCAN_STARTED,
                                                            c.UNIT_COMPLETED, c.SCAN_FINISHED], kinds
    assert all(kinds.index(c.SCAN_STARTED) < i < kinds.index(c.UNIT_COMPLETED)
               for i, t in enumerate(kinds) if t == c.UNIT_PROGRESSED)
    assert items[0]["actor"] == {"token_id": ws.token["Member"], "role": "Member"}
    completed = items[kinds.index(c.UNIT_COMPLETED)]
    assert items[0]["data"]["kind"] == "monitor" and completed["data"]["unit_id"].startswith(execution)
    sync = history(ws.admin, sync_id)
    assert types(sync)[0] == c.RUN_SCAN and sync[0]["data"]["kind"] == "catalog" and types(sync)[-1] == c.SCAN_FINISHED
    assert [e["id"] for e in from_the_log(system, execution)] == [i["id"] for i in items]


def test_as_of_an_instant_the_scan_is_what_the_api_said_then(ws, aborted_resumed_rerun):
    run = aborted_resumed_rerun
    said = run["said"]
    aborted, completed, dismissed, rerun = (answer for _, answer, _ in said)
    assert aborted["status"] != "completed" and aborted != completed
    assert completed["status"] == "completed" and dismissed != completed
    assert len(dismissed["score_history"]) == len(completed["score_history"]) + 1
    assert rerun["delta"] is not None and rerun["delta"]["previous_scan_id"] == run["scan_id"]
    for path, answer, instant in said:
        r = ws.viewer.get(path, params={"as_of": instant})
        assert r.status_code == 200, r.text
        assert r.json() == answer, (path, instant)
    r = ws.admin.get(f"/api/scan/{run['scan_id']}", params={"as_of": run["before"]})
    assert r.status_code == 404 and r.json()["message"] == "Scan not found"  # not requested by then
    r = ws.admin.get(f"/api/scan/{run['scan_id']}", params={"as_of": "yesterday"})
    assert r.status_code == 400 and r.json()["details"][0]["path"] == ["as_of"]
    r = ws.admin.get(f"/api/scan/{run['scan_id']}", params={"as_of": "2026-11-30T12:00:00"})  # no zone
    assert r.status_code == 400


def test_as_of_stays_in_the_callers_workspace(system, aborted_resumed_rerun):
    path, _, instant = aborted_resumed_rerun["said"][1]
    with system.client() as other_workspace:
        r = other_workspace.get(path, params={"as_of": instant})
        assert r.status_code == 404 and r.json()["message"] == "Scan not found"


def test_replay_as_of_an_instant_rebuilds_the_read_models_as_they_were(system, tmp_path, aborted_resumed_rerun):
    run = aborted_resumed_rerun
    (_, aborted, at_abort), (_, completed, at_completion) = run["said"][:2]
    statuses = {}
    for name, instant in (("abort", at_abort), ("completion", at_completion)):
        target = databases.scratch(tmp_path, name)
        out = system.cli("replay", "--as-of", instant, "--into", target)
        assert f"as of {instant}" in out.stdout and "events/s" in out.stderr  # its throughput
        with contextlib.closing(databases.connect_read(target)) as db:
            statuses[name] = tuple(db.execute("SELECT status, violations_seen FROM rm_scans WHERE scan_id = ?",
                                              (run["scan_id"],)).fetchone())
            rerun = db.execute("SELECT COUNT(*) FROM rm_scans WHERE rerun_of = ?", (run["scan_id"],)).fetchone()[0]
        assert rerun == 0  # requested later
    assert statuses["abort"] == ("aborted", aborted["violation_count"])
    assert statuses["completion"] == ("completed", completed["violation_count"])
    bad = subprocess.run([sys.executable, "-m", "cli.main", "replay", "--as-of", "2026-11-30T12:00:00",
                          "--into", f"sqlite:///{tmp_path / 'bad.db'}"], env=system.env, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "zone" in bad.stderr


def copy_log(system, scan_id: str, alter) -> str:
    """The scan's partitions of the projector's topics copied record for record (same partitions, keys,
    values, headers, timestamps) under another prefix, `alter(topic, key, value)` changing what it returns
    for the record it picks.
    Returns the copy's prefix: a copied log, as an auditor or an attacker would hold one."""
    prefix = system.env["SCANLEDGER_TOPIC_PREFIX"]
    copy = f"{prefix}-copy-{uuid.uuid4().hex[:6]}"
    bootstrap = system.env["KAFKA_BOOTSTRAP_SERVERS"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": copy, "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    try:
        metadata = consumer.list_topics(timeout=10)
        names = [f"{prefix}.{t}" for t in ("commands", "scan-events", "violations", "findings")]
        for future in admin.create_topics([NewTopic(n.replace(prefix, copy, 1), len(metadata.topics[n].partitions),
                                                    1) for n in names]).values():
            future.result()
        for name in names:  # the scan's partition of each (verify --scan reads no other)
            for p in [partition_of(scan_id, len(metadata.topics[name].partitions))]:
                tp = TopicPartition(name, p)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(name, p, low)])
                done = low
                while done < high:
                    # consume() waits out its timeout for a batch the partition's tail cannot fill
                    for m in consumer.consume(500, timeout=0.2):
                        if m.error() or m.offset() >= high:
                            continue
                        value = alter(name, m.key(), m.value())
                        while True:
                            try:
                                producer.produce(name.replace(prefix, copy, 1), value=value, key=m.key(),
                                                 partition=p, headers=m.headers(), timestamp=m.timestamp()[1])
                                break
                            except BufferError:  # its queue is full: let it deliver some first
                                producer.poll(0.5)
                        done = m.offset() + 1
        producer.flush(30)
    finally:
        consumer.close()
    return copy


def verify_cli(system, *args, prefix=None) -> subprocess.CompletedProcess:
    env = {**system.env, **({"SCANLEDGER_TOPIC_PREFIX": prefix} if prefix else {})}
    return subprocess.run([sys.executable, "-m", "cli.main", "verify", *args], env=env, capture_output=True,
                          text=True, cwd=system.data_dir)


def test_verify_holds_on_the_log_and_names_a_byte_changed_in_a_copy_of_it(system, aborted_resumed_rerun):
    scan_id = aborted_resumed_rerun["scan_id"]
    live = verify_cli(system, "--scan", scan_id)
    assert live.returncode == 0, live.stdout + live.stderr
    assert f"scan {scan_id}: ok" in live.stdout and "head " in live.stdout and "records/s" in live.stderr
    untouched = copy_log(system, scan_id, lambda topic, key, value: value)
    same = verify_cli(system, "--scan", scan_id, prefix=untouched)
    assert same.returncode == 0 and same.stdout == live.stdout  # a faithful copy: the same head
    picked = {}

    def one_byte(topic, key, value):
        if not picked and topic.endswith(".violations") and key == scan_id.encode() and b'"value":' in value:
            at = value.index(b'"value":') + len(b'"value":')
            while not value[at:at + 1].isdigit():
                at += 1
            picked["id"] = orjson.loads(value)["id"]
            return value[:at] + (b"1" if value[at:at + 1] != b"1" else b"2") + value[at + 1:]
        return value

    tampered = copy_log(system, scan_id, one_byte)
    out = verify_cli(system, "--scan", scan_id, prefix=tampered)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"scan {scan_id}: FAILED: {c.VIOLATION_DETECTED} {picked['id']} at " in out.stdout, out.stdout
