"""Seed 004's scans on the real system (broker, worker, projector, API) and a real S3 server:
a parallel scan over a local directory and an S3 bucket holding the labelled corpus finds
exactly what was planted, with the coverage block's numbers; every endpoint and status code;
cancel mid-scan keeps its partial results; another workspace sees nothing; replay rebuilds the
same rows. Waits poll until the system answers: no time limits."""
from __future__ import annotations

import gzip
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition

from harness import databases
from harness.corpus import FAMILIES, generate
from harness.system import System
from services.domain import contracts as c
from services.domain.detectors import described
from services.domain.envelope import decode
from services.stores.read_models import TABLES
from tests.e2e.helpers import rows
from tests.e2e.monitor_fixtures import in_workspace

KEY_ID_ENV, SECRET_ENV = "SCANLEDGER_SECRET_SENSITIVE_KEY_ID", "SCANLEDGER_SECRET_SENSITIVE_SECRET"
FILE_TYPES = ["csv", "json", "jsonl", "parquet", "txt", "gz"]


def ok(r: httpx.Response, status: int = 200):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "success"
    return body["data"]


def error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code, body
    return body


def until(probe):
    while not (found := probe()):
        time.sleep(0.1)
    return found


def settled(client, scan_id) -> dict:
    return until(lambda: (d := ok(client.get(f"/api/v1/scans/{scan_id}")))["status"] not in ("queued", "running")
                 and d)


@pytest.fixture(scope="module")
def world(kafka, s3_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("sensitive-root")
    corpus = generate(seed=41, files=20, rows=60)
    local, remote = corpus.files[::2], corpus.files[1::2]
    for f in local:
        (root / "lake" / f.name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lake" / f.name).write_bytes(f.data)
    (root / "lake" / "README.md").write_text("not a file type the scan asks for: a@example.com")
    (root / "lake" / "data" / "blob.txt").write_bytes(b"\x00\x01\x02 binary, skipped")
    bulk = root / "bulk"
    bulk.mkdir()
    # one email a file; past the first group (64 files), 256 KB of text a file, gzipped to a few hundred bytes,
    # so the scan outlasts a cancel's way to the worker by seconds on a loaded machine, not by a race
    nothing = b"no contact on file\n"
    filler = gzip.compress(nothing * (256 * 1024 // len(nothing)))
    for i in range(1500):
        line = f"ticket {i} for jane.doe{i}@example.com\n".encode()
        if i < 64:
            (bulk / f"row_{i:05d}.txt").write_bytes(line)
        else:
            (bulk / f"row_{i:05d}.txt.gz").write_bytes(gzip.compress(line) + filler)  # two gzip members: one text
    bucket = s3_server.bucket(f"sensitive-{uuid.uuid4().hex[:8]}", {f.name: f.data for f in remote} |
                              {"other/skip.csv": b"email\nz@example.com\n"})
    system = System(kafka, tmp_path_factory.mktemp("sensitive-system"), SCANLEDGER_DATASTORE_ROOT=str(root),
                    SCANLEDGER_S3_ENDPOINTS=s3_server.url,
                    **{KEY_ID_ENV: s3_server.keys["aws_access_key_id"],
                       SECRET_ENV: s3_server.keys["aws_secret_access_key"]})
    system.start()
    try:
        with in_workspace(system, "Sensitive A") as a, in_workspace(system, "Sensitive B") as b:
            lake = ok(a.admin.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                "config": {"path": "lake"}}), 201)
            s3 = ok(a.admin.post("/api/v1/connectors", json={"name": "Exports", "type": "s3", "config": {
                "bucket": bucket, "endpoint_url": s3_server.url, "region": "us-east-1",
                "credentials": {"source": "env", "access_key_id_env": KEY_ID_ENV,
                                "secret_access_key_env": SECRET_ENV}}}), 201)
            bulk_conn = ok(a.admin.post("/api/v1/connectors", json={"name": "Bulk", "type": "local_dir",
                                                                     "config": {"path": "bulk"}}), 201)
            yield {"system": system, "a": a, "b": b, "corpus": corpus, "lake": lake["id"], "s3": s3["id"],
                   "bulk": bulk_conn["id"]}
    finally:
        system.stop()


@pytest.fixture(scope="module")
def scan(world):
    body = {"connectors": [world["lake"], world["s3"]], "type": "full",
            "options": {"max_workers": 4, "file_types": FILE_TYPES, "prefixes": ["data/"], "coverage_target": 0.9}}
    started = ok(world["a"].member.post("/api/v1/scans/parallel", json=body), 201)
    return started, settled(world["a"].admin, started["scan_id"])


def test_the_scan_is_queued_with_the_seeds_shape(world, scan):
    started, _ = scan
    assert set(started) == {"scan_id", "status", "connectors", "type", "workers_requested", "created_at"}
    assert started["status"] == "queued" and started["type"] == "full"
    assert started["connectors"] == [world["lake"], world["s3"]] and started["workers_requested"] == 4


def test_a_scan_over_local_dir_and_s3_finds_exactly_what_was_planted(world, scan):
    started, done = scan
    corpus = world["corpus"]
    assert done["status"] == "completed", done
    assert done["coverage"] == {
        "coverage_target": 0.9, "coverage_strategy": "best_effort", "coverage_pct": round(20 / 21, 4),
        "target_met": True, "completeness_score": round(20 / 21, 4), "enumeration_status": "complete",
        "total_enumerated": 21, "total_scanned": 20, "total_skipped": 1, "total_failed": 0}
    truth = Counter(family for _, _, family in corpus.truth)
    findings, cursor = [], None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        r = world["a"].viewer.get(f"/api/v1/scans/{started['scan_id']}/findings", params=params)
        findings += ok(r)
        cursor = r.json()["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert Counter(f["family"] for f in findings) == truth
    assert len({f["finding_id"] for f in findings}) == len(findings) == sum(truth.values())
    planted = {value for _, value in corpus.planted_values}
    assert not any(f["masked_sample"] in planted for f in findings)  # masked, never the raw value
    assert {f["connector_id"] for f in findings} == {world["lake"], world["s3"]}
    progress = done["progress"]
    assert progress["files_total"] == 21 and progress["files_processed"] == 21 and progress["files_failed"] == 0
    assert progress["findings_count"] == len(findings) and progress["percent_complete"] == 100
    assert progress["estimated_remaining_seconds"] == 0 and progress["elapsed_seconds"] >= 0
    assert done["workers"] == {"total": 4, "active": 0, "completed": 4, "failed": 0, "cancelled": 0}
    assert done["created_at"] <= done["started_at"] <= done["completed_at"]


def pages(client, path, **params) -> list:
    out, cursor = [], None
    while True:
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        out += ok(r)
        cursor = r.json()["pagination"]["next_cursor"]
        if cursor is None:
            return out


def test_each_files_outcome_and_the_findings_by_any_filter(world, scan):
    started, done = scan
    viewer, scan_id = world["a"].viewer, started["scan_id"]
    files = pages(viewer, f"/api/v1/scans/{scan_id}/files", limit=4)
    assert len(files) == len({(f["connector_id"], f["file"]) for f in files}) == 21
    assert [f["status"] for f in files].count("scanned") == 20
    [skipped] = ok(viewer.get(f"/api/v1/scans/{scan_id}/files", params={"status": "skipped"}))
    assert skipped["file"] == "data/blob.txt" and skipped["reason"] == "binary" and skipped["findings_count"] == 0
    assert done["files_by_reason"] == {"skipped": {"binary": 1}, "failed": {}} and done["message"] is None
    assert done["options"]["max_findings_per_file"] == 1000 and done["occurrences_count"] == len(pages(
        viewer, f"/api/v1/scans/{scan_id}/findings", limit=1000))  # a few values a file: none over the cap
    by_detector = done["findings_by_detector"]
    assert sum(by_detector.values()) == done["progress"]["findings_count"] == sum(f["findings_count"] for f in files)
    everything = pages(viewer, f"/api/v1/scans/{scan_id}/findings", limit=7)
    for detector, n in by_detector.items():  # each filter a page at a time: exactly its share
        found = pages(viewer, f"/api/v1/scans/{scan_id}/findings", detector=detector, limit=3)
        assert len(found) == n and {f["detector"] for f in found} == {detector}
    from_s3 = pages(viewer, f"/api/v1/scans/{scan_id}/findings", connector=world["s3"])
    assert from_s3 and len(from_s3) == sum(f["connector_id"] == world["s3"] for f in everything)
    some = everything[0]["file"]
    prefix = some[:some.rindex("/") + 1]
    assert {f["finding_id"] for f in pages(viewer, f"/api/v1/scans/{scan_id}/findings", file=prefix)} == \
        {f["finding_id"] for f in everything if f["file"].startswith(prefix)}
    sure = pages(viewer, f"/api/v1/scans/{scan_id}/findings", min_confidence=0.95)
    assert {f["finding_id"] for f in sure} == {f["finding_id"] for f in everything if f["confidence"] >= 0.95}
    assert len(pages(viewer, f"/api/v1/scans/{scan_id}/findings", llm_verdict="none")) == len(everything)
    assert pages(viewer, f"/api/v1/scans/{scan_id}/findings", llm_verdict="rejected") == []
    for path, params, where in ((f"/api/v1/scans/{scan_id}/findings", {"detectr": "email"}, ["detectr"]),
                                (f"/api/v1/scans/{scan_id}/findings", {"min_confidence": "high"}, ["min_confidence"]),
                                (f"/api/v1/scans/{scan_id}/findings", {"min_confidence": "2"}, ["min_confidence"]),
                                (f"/api/v1/scans/{scan_id}/findings", {"llm_verdict": "maybe"}, ["llm_verdict"]),
                                (f"/api/v1/scans/{scan_id}/files", {"status": "lost"}, ["status"]),
                                (f"/api/v1/scans/{scan_id}/files", {"file": "x"}, ["file"])):
        body = error(viewer.get(path, params=params), 400, "VALIDATION_ERROR")
        assert [d["path"] for d in body["details"]] == [where], body
    error(world["b"].admin.get(f"/api/v1/scans/{scan_id}/files"), 404, "NOT_FOUND")


def test_workers_show_their_chunks(world, scan):
    started, _ = scan
    workers = ok(world["a"].admin.get(f"/api/v1/scans/{started['scan_id']}/workers"))
    assert [w["worker_id"] for w in workers] == ["worker-001", "worker-002", "worker-003", "worker-004"]
    assert [w["chunk"]["start_index"] for w in workers] == [0, 6, 11, 16]  # 21 files: 6, 5, 5, 5
    assert [w["chunk"]["end_index"] for w in workers] == [5, 10, 15, 20]
    assert sum(w["chunk"]["file_count"] for w in workers) == 21
    for w in workers:
        assert w["status"] == "completed" and w["progress"]["percent_complete"] == 100
        assert w["progress"]["files_processed"] == w["chunk"]["file_count"]
        assert w["started_at"] <= w["completed_at"]
    assert sum(w["progress"]["findings_count"] for w in workers) == sum(Counter(
        f for _, _, f in world["corpus"].truth).values())


def test_the_scan_history_pages_with_a_stable_cursor(world, scan):
    started, _ = scan
    admin = world["a"].admin
    ids = [started["scan_id"]]
    for _ in range(3):
        ids.append(ok(admin.post("/api/v1/scans/parallel", json={
            "connectors": [world["lake"]], "type": "full", "options": {"file_types": ["csv"]}}), 201)["scan_id"])
    for scan_id in ids:
        settled(admin, scan_id)
    first = admin.get("/api/v1/scans", params={"limit": 2})
    page1 = ok(first)
    assert [s["scan_id"] for s in page1] == ids[::-1][:2]
    cursor = first.json()["pagination"]["next_cursor"]
    newer = ok(admin.post("/api/v1/scans/parallel", json={"connectors": [world["lake"]], "type": "full"}), 201)
    until(lambda: newer["scan_id"] in {s["scan_id"] for s in ok(admin.get("/api/v1/scans"))})
    page2 = ok(admin.get("/api/v1/scans", params={"limit": 2, "cursor": cursor}))
    assert [s["scan_id"] for s in page2] == ids[::-1][2:4]  # the newer scan shifts nothing
    assert len(ok(admin.get("/api/v1/scans"))) == 5  # default limit 20
    by_s3 = ok(admin.get("/api/v1/scans", params={"connector": world["s3"]}))
    assert [s["scan_id"] for s in by_s3] == [started["scan_id"]]
    assert started["scan_id"] in {s["scan_id"] for s in ok(admin.get("/api/v1/scans", params={
        "status": "completed"}))}
    assert ok(admin.get("/api/v1/scans", params={"status": "cancelled", "connector": world["s3"]})) == []
    assert ok(admin.get("/api/v1/scans", params={"since": "2999-01-01T00:00:00Z"})) == []
    assert len(ok(admin.get("/api/v1/scans", params={"since": started["created_at"]}))) == 5
    for params in ({"limit": "0"}, {"limit": "x"}, {"status": "done"}, {"since": "yesterday"},
                   {"cursor": "not-a-cursor"}):
        error(admin.get("/api/v1/scans", params=params), 400, "VALIDATION_ERROR")


def test_bad_requests(world):
    admin = world["a"].admin
    good = {"connectors": [world["lake"]], "type": "full"}
    for body in ({**good, "extra": 1}, {**good, "type": "partial"}, {"type": "full"}, {**good, "connectors": []},
                 {**good, "options": {"max_workers": 0}}, {**good, "options": {"max_workers": "4"}},
                 {**good, "options": {"coverage_target": 1.5}}, {**good, "options": {"coverage_strategy": "x"}},
                 {**good, "options": {"unknown": True}}, {**good, "options": {"timeout_minutes": -1}},
                 {**good, "connectors": ["conn-nope"]}, {**good, "connectors": [world["lake"], world["lake"]]}):
        body_ = error(admin.post("/api/v1/scans/parallel", json=body), 400, "VALIDATION_ERROR")
        assert body_["details"], body
    r = error(admin.post("/api/v1/scans/parallel", json={**good, "options": {"llm_assist": True}}), 422,
              "UNPROCESSABLE_ENTITY")
    assert "SCANLEDGER_LLM_BASE_URL and SCANLEDGER_LLM_MODEL" in r["message"]  # no endpoint configured: what to set
    assert r["details"] == [{"path": ["options", "llm_assist"], "message": "No LLM endpoint configured"}]
    error(world["a"].viewer.post("/api/v1/scans/parallel", json=good), 403, "FORBIDDEN")
    error(world["b"].admin.post("/api/v1/scans/parallel", json=good), 400, "VALIDATION_ERROR")  # not B's
    for path in ("/api/v1/scans/scan-nope", "/api/v1/scans/scan-nope/workers", "/api/v1/scans/scan-nope/findings"):
        error(admin.get(path), 404, "NOT_FOUND")
    error(admin.post("/api/v1/scans/scan-nope/cancel"), 404, "NOT_FOUND")


def test_another_workspace_gets_404(world, scan):
    started, _ = scan
    other = world["b"].admin
    scan_id = started["scan_id"]
    for path in (f"/api/v1/scans/{scan_id}", f"/api/v1/scans/{scan_id}/workers", f"/api/v1/scans/{scan_id}/findings"):
        error(other.get(path), 404, "NOT_FOUND")
    error(other.post(f"/api/v1/scans/{scan_id}/cancel"), 404, "NOT_FOUND")
    assert ok(other.get("/api/v1/scans")) == []


def test_cancel_mid_scan_keeps_partial_results_and_a_finished_scan_is_409(world, scan):
    admin = world["a"].admin
    started = ok(admin.post("/api/v1/scans/parallel", json={"connectors": [world["bulk"]], "type": "full",
                                                             "options": {"max_workers": 1}}), 201)
    scan_id = started["scan_id"]
    until(lambda: ok(admin.get(f"/api/v1/scans/{scan_id}"))["progress"]["files_processed"] > 0)
    cancelled = ok(admin.post(f"/api/v1/scans/{scan_id}/cancel"))
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    assert 0 < cancelled["partial_results"]["files_processed"] < 1500
    settled(admin, scan_id)

    def quiet():
        """The worker stops between files once it has read the cancel: what it found until then is all in."""
        before = ok(admin.get(f"/api/v1/scans/{scan_id}"))
        time.sleep(1)
        after = ok(admin.get(f"/api/v1/scans/{scan_id}"))
        progress = after["progress"]
        return before == after and progress["findings_count"] == progress["files_processed"] and after

    done = until(quiet)
    assert done["status"] == "cancelled" and done["cancelled_at"] == cancelled["cancelled_at"]
    assert 0 < done["progress"]["files_processed"] < done["progress"]["files_total"] == 1500
    assert done["progress"]["findings_count"] == done["progress"]["files_processed"]  # one email per file
    assert done["coverage"]["total_scanned"] == done["progress"]["files_processed"]
    findings = ok(admin.get(f"/api/v1/scans/{scan_id}/findings", params={"limit": 1000}))
    assert findings and {f["family"] for f in findings} == {"email"}
    [worker] = ok(admin.get(f"/api/v1/scans/{scan_id}/workers"))
    assert worker["status"] == "cancelled"
    error(admin.post(f"/api/v1/scans/{scan_id}/cancel"), 409, "CONFLICT")
    error(admin.post(f"/api/v1/scans/{scan[0]['scan_id']}/cancel"), 409, "CONFLICT")


def scan_events(system, scan_id: str) -> list[dict]:
    """The scan's events on the scan-events topic as the log holds them (its key's partition, in order)."""
    topic = f"{system.env['SCANLEDGER_TOPIC_PREFIX']}.scan-events"
    consumer = Consumer({"bootstrap.servers": system.env["KAFKA_BOOTSTRAP_SERVERS"],
                         "group.id": f"read-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
        out, left = [], sum(ends.values())
        while left:
            for m in consumer.consume(500, timeout=0.5):
                if not m.error():
                    left -= 1
                    if m.key() == scan_id.encode():
                        out.append(decode(m.value()))
        return out
    finally:
        consumer.close()


def test_a_cancel_settles_what_comes_after_it_is_not_counted(world):
    """40 files of 100,000 rows (an email every 50): cancelled mid-scan, its numbers are those of the file
    outcomes the ledger has before the cancel, whatever the chunks still reported after it; the cancel's
    answer never says more than stays."""
    admin, system = world["a"].admin, world["system"]
    _, conn = lake_of(world, "Settle", {f"part_{i:02d}.csv": "id,contact\n" + "".join(
        f"{j},person{i}.{j}@example.com\n" if j % 50 == 0 else f"{j},no contact on file\n" for j in range(100_000))
        for i in range(40)})
    scan_id = ok(admin.post("/api/v1/scans/parallel", json={"connectors": [conn], "type": "full",
                                                             "options": {"max_workers": 2}}), 201)["scan_id"]
    until(lambda: ok(admin.get(f"/api/v1/scans/{scan_id}"))["progress"]["files_processed"] > 0)
    cancelled = ok(admin.post(f"/api/v1/scans/{scan_id}/cancel"))
    answered = cancelled["partial_results"]

    def quiet():  # the chunks have stopped (or finished) and the findings of the counted files are listed
        before = ok(admin.get(f"/api/v1/scans/{scan_id}"))
        time.sleep(1)
        after = ok(admin.get(f"/api/v1/scans/{scan_id}"))
        listed = len(pages(admin, f"/api/v1/scans/{scan_id}/findings", limit=1000))
        return before == after and listed == after["progress"]["findings_count"] and after

    done = until(quiet)
    assert done["status"] == "cancelled" and done["completed_at"] and done["cancelled_at"]
    events = scan_events(system, scan_id)
    cut = next(i for i, e in enumerate(events) if e["type"] == c.SCAN_ABORTED)
    before = [e["data"] for e in events[:cut] if e["type"] == c.FILE_OUTCOME]
    counted = {(f["connector_id"], f["name"]) for f in before}
    assert done["progress"]["files_processed"] == len(counted) < 40
    # 2,000 emails a file: 1,000 reported (max_findings_per_file's default), every one counted as an occurrence
    assert done["progress"]["findings_count"] == sum(f["findings"] for f in before) == 1000 * len(counted)
    assert done["occurrences_count"] == sum(f["occurrences"] for f in before) == 2000 * len(counted)
    # the answer was given once the cancel was on the ledger: what it said is what stays (files mid-read at most)
    assert answered["files_processed"] <= done["progress"]["files_processed"]
    assert answered["findings_count"] <= done["progress"]["findings_count"]
    files = pages(admin, f"/api/v1/scans/{scan_id}/files", limit=1000)
    assert {(f["connector_id"], f["file"]) for f in files} == counted
    assert {(f["findings_count"], f["occurrences"]) for f in files} == {(1000, 2000)}
    workers = done["workers"]
    assert workers["active"] == 0 and workers["completed"] + workers["cancelled"] + workers["failed"] == 2


def test_a_connector_that_cannot_be_listed_makes_the_enumeration_partial(world):
    admin = world["a"].admin
    root = Path(world["system"].env["SCANLEDGER_DATASTORE_ROOT"])
    gone_dir = f"gone-{uuid.uuid4().hex[:6]}"
    (root / gone_dir).mkdir()
    gone = ok(admin.post("/api/v1/connectors", json={"name": "Gone", "type": "local_dir",
                                                      "config": {"path": gone_dir}}), 201)["id"]
    (root / gone_dir).rmdir()
    partial = settled(admin, ok(admin.post("/api/v1/scans/parallel", json={
        "connectors": [world["lake"], gone], "type": "full", "options": {"file_types": ["csv"]}}), 201)["scan_id"])
    assert partial["status"] == "partial" and partial["coverage"]["enumeration_status"] == "partial"
    assert partial["coverage"]["completeness_score"] == 0.5
    failed = settled(admin, ok(admin.post("/api/v1/scans/parallel", json={
        "connectors": [gone], "type": "full"}), 201)["scan_id"])
    assert failed["status"] == "failed" and failed["coverage"]["enumeration_status"] == "failed"
    strict = settled(admin, ok(admin.post("/api/v1/scans/parallel", json={
        "connectors": [world["lake"]], "type": "full", "options": {"prefixes": ["data/"],
                                                                   "coverage_strategy": "strict"}}), 201)["scan_id"])
    assert strict["status"] == "failed" and not strict["coverage"]["target_met"]  # the binary was skipped


def test_replay_rebuilds_the_same_rows(world, scan, tmp_path):
    system = world["system"]
    target = databases.scratch(tmp_path, "replay")
    system.cli("replay", "--into", target)
    for table in TABLES:
        if table.startswith("rm_sensitive") or table in ("rm_scans", "rm_units"):
            assert rows(target, table) == rows(system.db_url, table), table


def lake_of(world, name: str, files: dict[str, bytes | str]) -> tuple[Path, str]:
    """A folder of these files under the system's datastore root, and a local_dir connector on it."""
    folder = Path(world["system"].env["SCANLEDGER_DATASTORE_ROOT"]) / f"{name.lower()}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
    return folder, ok(world["a"].admin.post("/api/v1/connectors", json={
        "name": name, "type": "local_dir", "config": {"path": folder.name}}), 201)["id"]


def scan_of(admin, conn: str, type_: str = "full", **options) -> dict:
    """A scan of one connector, once it has settled."""
    return settled(admin, ok(admin.post("/api/v1/scans/parallel", json={
        "connectors": [conn], "type": type_, "options": options}), 201)["scan_id"])


def test_an_incremental_scan_reads_only_new_or_changed_files(world):
    admin = world["a"].admin
    folder, conn = lake_of(world, "Inc", {f"f{i}.txt": f"contact a{i}.person@example.com\n" for i in range(3)})

    def scan(type_):
        return scan_of(admin, conn, type_)

    def counts(done):
        cov = done["coverage"]
        return (done["status"], cov["total_enumerated"], cov["total_scanned"], cov["total_skipped"],
                cov["coverage_pct"], done["progress"]["findings_count"])

    first = scan("incremental")
    assert counts(first) == ("completed", 3, 3, 0, 1.0, 3)  # nothing before it: every file
    assert first["baseline_scans"] == {conn: None}  # and it says so
    (folder / "f1.txt").write_text("contact changed.person@example.com\nand b.person@example.com\n")
    (folder / "f3.txt").write_text("new x.person@example.com\n")
    second = scan("incremental")
    assert counts(second) == ("completed", 4, 2, 2, 1.0, 3) and second["baseline_scans"] == {conn: first["scan_id"]}
    findings = ok(admin.get(f"/api/v1/scans/{second['scan_id']}/findings"))
    assert sorted(f["file"] for f in findings) == ["f1.txt", "f1.txt", "f3.txt"]
    assert counts(scan("incremental")) == ("completed", 4, 0, 4, 1.0, 0)  # the watermark moved on
    assert counts(scan("full")) == ("completed", 4, 4, 0, 1.0, 5)


def test_an_incremental_scan_builds_on_a_partial_baseline(world):
    """A default scan with one file it cannot read ends partial; that is still a baseline for what it read."""
    admin = world["a"].admin
    files = {f"f{i}.txt": f"contact a{i}.person@example.com\n" for i in range(4)}
    folder, conn = lake_of(world, "IncPartial", {**files, "picture.bmp": b"BM\x00\x00 not a type the scan reads"})

    def scan(type_):
        return scan_of(admin, conn, type_)

    base = scan("full")
    assert base["status"] == "partial" and base["coverage"]["total_scanned"] == 4
    assert base["files_by_reason"] == {"skipped": {"unsupported type": 1}, "failed": {}}
    (folder / "f0.txt").write_text("changed c.person@example.com\n")
    later = scan("incremental")
    assert later["baseline_scans"] == {conn: base["scan_id"]}
    cov = later["coverage"]
    # f0 changed: read; f1-f3 unchanged since the partial baseline: not read; the picture: skipped again
    assert (cov["total_scanned"], cov["total_skipped"], later["progress"]["findings_count"]) == (1, 4, 1)
    assert later["files_by_reason"]["skipped"] == {"unchanged": 3, "unsupported type": 1}


def test_the_detectors_are_listed_and_a_scan_runs_the_ones_it_names(world, scan):
    """Last in this module: its scan would be one more in the history the paging test counts."""
    viewer, admin = world["a"].viewer, world["a"].admin
    detectors = ok(viewer.get("/api/v1/detectors"))
    assert {d["family"] for d in detectors} == set(FAMILIES)
    assert all(d["validates"] and d["confidence"] and all(0 < x <= 1 for x in d["confidence"]) for d in detectors)
    card = next(d for d in detectors if d["name"] == "card_number")
    assert "Luhn" in card["validates"] and card["family"] == "payment_card"
    assert "EXAMPLE" in next(d for d in detectors if d["name"] == "aws_access_key_id")["validates"]
    body = {"connectors": [world["lake"], world["s3"]], "type": "full",
            "options": {"max_workers": 2, "file_types": FILE_TYPES, "prefixes": ["data/"], "coverage_target": 0.9,
                        "detectors": ["email", "payment_card"]}}
    chosen = settled(admin, ok(admin.post("/api/v1/scans/parallel", json=body), 201)["scan_id"])
    assert chosen["status"] == "completed" and chosen["options"]["detectors"] == ["email", "payment_card"]
    truth = Counter(family for _, _, family in world["corpus"].truth)
    found = Counter(f["family"] for f in pages(viewer, f"/api/v1/scans/{chosen['scan_id']}/findings", limit=1000))
    assert found == {family: truth[family] for family in ("email", "payment_card")}
    bad = error(admin.post("/api/v1/scans/parallel", json={**body, "options": {"detectors": ["emails"]}}), 400,
                "VALIDATION_ERROR")
    assert bad["details"][0]["path"] == ["options", "detectors"] and "emails" in bad["details"][0]["message"]


def test_custom_detectors_and_an_allow_list_of_the_workspace(world):
    a, b = world["a"], world["b"]
    admin, viewer = a.admin, a.viewer
    _, conn = lake_of(world, "Custom", {
        "staff.csv": "employee,card,note\nEMP-123456,4111 1111 1111 1111,ok\n"
                     "EMP-654321,4111-1111-1111-1111,\nEMP-000042,5500 0000 0000 0004,EMP-12345\n",
        "notes.txt": "test card 4111111111111111 and ticket EMP-777777 for ops@example.com\n"})
    # a detector of the workspace's own: an RE2 pattern checked now, a name that is not a built-in's, once
    employee = ok(admin.post("/api/v1/detectors/custom", json={"name": "employee_id", "pattern": r"EMP-[0-9]{6}",
                                                                "confidence": 0.9}), 201)
    assert employee["name"] == "employee_id" and employee["id"].startswith("det-")
    for body, path in (({"name": "lookahead", "pattern": r"EMP-(?=\d)"}, ["pattern"]),
                       ({"name": "empty", "pattern": r"x*"}, ["pattern"]),
                       ({"name": "email", "pattern": r"abc"}, ["name"]),
                       ({"name": "Bad Name", "pattern": r"abc"}, ["name"]),
                       ({"name": "sum", "pattern": r"\d+", "checksum": "crc"}, ["checksum"]),
                       ({"name": "conf", "pattern": r"\d+", "confidence": 2}, ["confidence"])):
        assert error(admin.post("/api/v1/detectors/custom", json=body), 400, "VALIDATION_ERROR")["details"][0][
            "path"] == path, body
    error(admin.post("/api/v1/detectors/custom", json={"name": "employee_id", "pattern": "E"}), 409, "CONFLICT")
    error(viewer.post("/api/v1/detectors/custom", json={"name": "x_id", "pattern": "X"}), 403, "FORBIDDEN")
    listed = ok(viewer.get("/api/v1/detectors"))
    [mine] = [d for d in listed if d["custom"]]
    assert (mine["name"], mine["family"], mine["confidence"], mine["id"]) == ("employee_id", "custom", [0.9],
                                                                              employee["id"])
    assert [d["name"] for d in listed] == [d["name"] for d in described()] + ["employee_id"]  # built-ins, then its own
    assert "employee_id" not in {d["name"] for d in ok(b.admin.get("/api/v1/detectors"))}
    # an allow-list: a test card never reported, however it is written; kept as a hash, shown masked
    allowed = ok(admin.post("/api/v1/allowlist", json={"value": "4111111111111111", "label": "test card"}), 201)
    assert allowed["masked"].endswith("1111") and "4111111111111111" not in str(allowed)
    assert ok(admin.post("/api/v1/allowlist", json={"value": "4111 1111 1111 1111"}), 201)["id"] == allowed["id"]
    assert [x["id"] for x in ok(viewer.get("/api/v1/allowlist"))] == [allowed["id"]]
    assert ok(b.admin.get("/api/v1/allowlist")) == []
    assert "4111111111111111" not in databases.stored_text(world["system"].db_url)

    def findings_of(**options) -> list[tuple]:
        done = scan_of(admin, conn, **options)
        assert done["status"] == "completed", done
        return sorted((f["file"], f["detector"], f["masked_sample"])
                      for f in pages(viewer, f"/api/v1/scans/{done['scan_id']}/findings"))

    found = findings_of()
    assert [f for f in found if f[1] == "employee_id"] == [
        ("notes.txt", "employee_id", "*******777"), ("staff.csv", "employee_id", "*******042"),
        ("staff.csv", "employee_id", "*******321"), ("staff.csv", "employee_id", "*******456")]  # a third shown
    assert [f[:2] for f in found if f[1] == "card_number"] == [("staff.csv", "card_number")]  # 5500…, not 4111…
    assert ("notes.txt", "email") in {f[:2] for f in found}
    assert {f[1] for f in findings_of(detectors=["employee_id"])} == {"employee_id"}
    assert error(admin.post("/api/v1/scans/parallel", json={"connectors": [conn], "type": "full", "options": {
        "detectors": ["employee_idd"]}}), 400, "VALIDATION_ERROR")["details"][0]["path"] == ["options", "detectors"]
    # the settings are the scan's snapshot: removed, the next scan reports the card; the last one is unchanged
    ok(admin.delete(f"/api/v1/allowlist/{allowed['id']}"))
    ok(admin.delete(f"/api/v1/detectors/custom/{employee['id']}"))
    error(admin.delete(f"/api/v1/allowlist/{allowed['id']}"), 404, "NOT_FOUND")
    again = findings_of()
    assert sum(f[1] == "card_number" for f in again) == 4 and not any(f[1] == "employee_id" for f in again)


def nested_files() -> dict[str, bytes]:
    """Files shaped like users' exports, each value planted once at a place of its own."""
    team = {"team": [{"mail": "n1@example.com"}, {"mail": "n2@example.com"}, {"mail": "n3@example.com"}],
            "cards": ["4111111111111111", "5500000000000004"], "meta": {"owner": {"mail": "boss@example.com"}}}
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": [1, 2], "contacts": [[{"mails": ["p1@example.com", "p2@example.com"]}],
                                                        [{"mails": []}, {"mails": ["p3@example.com"]}]],
                             "tags": [["x", "t1@example.com"], []]}), sink)
    return {
        "nested/team.json": orjson.dumps(team),
        "nested/teams.jsonl": orjson.dumps(team) + b"\n" + orjson.dumps({"team": [{"mail": "n4@example.com"}]}),
        "nested/lists.parquet": sink.getvalue().to_pybytes(),
        "nested/windows.csv": "\ufeffid,contact\r\n1,u16@example.com\r\n".encode("utf-16"),
        "nested/sentence.txt": b"Pay with card 4111 1111 1111 1111. Thanks\n",
    }


EXPECTED_PLACES = {  # (file, row or line, column): one finding each
    ("nested/team.json", 1, "team[0].mail"), ("nested/team.json", 1, "team[1].mail"),
    ("nested/team.json", 1, "team[2].mail"), ("nested/team.json", 1, "cards[0]"), ("nested/team.json", 1, "cards[1]"),
    ("nested/team.json", 1, "meta.owner.mail"),
    ("nested/teams.jsonl", 1, "team[0].mail"), ("nested/teams.jsonl", 1, "team[1].mail"),
    ("nested/teams.jsonl", 1, "team[2].mail"), ("nested/teams.jsonl", 1, "cards[0]"),
    ("nested/teams.jsonl", 1, "cards[1]"), ("nested/teams.jsonl", 1, "meta.owner.mail"),
    ("nested/teams.jsonl", 2, "team[0].mail"),
    ("nested/lists.parquet", 1, "contacts[0].mails[0]"), ("nested/lists.parquet", 1, "contacts[0].mails[1]"),
    ("nested/lists.parquet", 2, "contacts[1].mails[0]"), ("nested/lists.parquet", 1, "tags[1]"),
    ("nested/windows.csv", 1, "contact"), ("nested/sentence.txt", 1, None),
}


def test_nested_json_parquet_lists_utf16_and_a_card_ending_a_sentence_locally_and_on_s3(world, s3_server):
    admin, files = world["a"].admin, nested_files()
    _, local = lake_of(world, "Shapes", files)
    bucket = s3_server.bucket(f"shapes-{uuid.uuid4().hex[:8]}", files)
    remote = ok(admin.post("/api/v1/connectors", json={"name": "Shapes S3", "type": "s3", "config": {
        "bucket": bucket, "endpoint_url": s3_server.url, "credentials": {
            "source": "env", "access_key_id_env": KEY_ID_ENV, "secret_access_key_env": SECRET_ENV}}}), 201)["id"]
    done = settled(admin, ok(admin.post("/api/v1/scans/parallel", json={
        "connectors": [local, remote], "type": "full", "options": {"max_workers": 3}}), 201)["scan_id"])
    assert done["status"] == "completed" and done["coverage"]["total_scanned"] == 2 * len(files)
    found = pages(admin, f"/api/v1/scans/{done['scan_id']}/findings", limit=1000)
    for connector in (local, remote):
        mine = [f for f in found if f["connector_id"] == connector]
        places = {(f["file"], f["location"].get("row", f["location"].get("line")), f["location"].get("column"))
                  for f in mine}
        assert len(mine) == len(places) == len(EXPECTED_PLACES) and places == EXPECTED_PLACES, connector
        assert all(f["detector_confidence"] == f["confidence"] for f in mine)
