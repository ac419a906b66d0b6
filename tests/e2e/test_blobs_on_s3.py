"""Blobs on S3 (issue 24): the API with the projector on one host, the streams worker on another (each
with its data dir of its own), one S3 blob store between them (SCANLEDGER_BLOB_URL and the AWS
variables, nothing else shared but Kafka). The S3 server is a real one (moto's, in its own process,
durable: stopped and started again, it comes back with its objects). A compliance scan and a
sensitive-data scan end with exactly the answers an oracle computes here; S3 stopped while scans are
in flight (requested and not yet planned; a BYOC scan running, its chunks waiting for workers), then
started again: they still end with exactly those answers. Waits poll until the system answers: no
time limits."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import httpx
import pytest

from harness import data
from harness.corpus import generate
from harness.s3 import S3Server
from harness.system import ROOT, System
from tests.e2e.helpers import all_violations, confirm, ok, policy, until, upload

BUCKET, PREFIX = "scan-blobs", "ledger/blobs"
KEY_ID_ENV, SECRET_ENV = "SCANLEDGER_SECRET_CORPUS_KEY_ID", "SCANLEDGER_SECRET_CORPUS_SECRET"
FILE_TYPES = ["csv", "json", "jsonl", "parquet", "txt", "gz"]
RETRIED = "the blob store did not answer"


@pytest.fixture(scope="module")
def world(kafka, tmp_path_factory):
    s3 = S3Server(tmp_path_factory.mktemp("blob-s3"), durable=True).start()
    s3.bucket(BUCKET)
    corpus = generate(seed=43, files=12, rows=40)
    s3.bucket("corpus-files", {f.name: f.data for f in corpus.files})
    root = tmp_path_factory.mktemp("blob-root")  # local files, for scans during an outage
    lake = generate(seed=44, files=8, rows=30)
    for f in lake.files:
        (root / "lake" / f.name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lake" / f.name).write_bytes(f.data)
    host_a, host_b = tmp_path_factory.mktemp("host-a"), tmp_path_factory.mktemp("host-b")
    aws = {"AWS_ENDPOINT_URL": s3.url, "AWS_ACCESS_KEY_ID": s3.keys["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": s3.keys["aws_secret_access_key"], "AWS_REGION": "us-east-1"}
    system = System(kafka, host_a, per_process={"worker": {"SCANLEDGER_DATA_DIR": str(host_b)}},
                    SCANLEDGER_BLOB_URL=f"s3://{BUCKET}/{PREFIX}", SCANLEDGER_UNIT_RECORDS="250",
                    SCANLEDGER_DATASTORE_ROOT=str(root), SCANLEDGER_S3_ENDPOINTS=s3.url,
                    **{KEY_ID_ENV: s3.keys["aws_access_key_id"], SECRET_ENV: s3.keys["aws_secret_access_key"]}, **aws)
    system.start()
    api = system.client()
    try:
        corpus_connector = ok(api.post("/api/v1/connectors", json={"name": "Corpus", "type": "s3", "config": {
            "bucket": "corpus-files", "endpoint_url": s3.url, "region": "us-east-1",
            "credentials": {"source": "env", "access_key_id_env": KEY_ID_ENV, "secret_access_key_env": SECRET_ENV}}}),
            201)
        lake_connector = ok(api.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                  "config": {"path": "lake"}}), 201)
        yield SimpleNamespace(system=system, api=api, s3=s3, host_a=host_a, host_b=host_b, corpus=corpus, lake=lake,
                              root=root, corpus_connector=corpus_connector["id"], lake_connector=lake_connector["id"])
    finally:
        api.close()
        system.stop()
        s3.stop()


def settled(api: httpx.Client, scan_id: str) -> dict:
    return until(lambda: (r := api.get(f"/api/scan/{scan_id}").json())["status"] in ("completed", "failed", "aborted")
                 and r)


def sensitive_settled(api: httpx.Client, scan_id: str) -> dict:
    return until(lambda: (d := ok(api.get(f"/api/v1/scans/{scan_id}")))["status"] not in ("queued", "running") and d)


def start_compliance(api: httpx.Client, pol: dict, up: dict, mapping: dict) -> str:
    r = api.post("/api/scan/run", json={"policy_id": pol["id"], "upload_id": up["upload_id"],
                                        "mapping_id": mapping["mapping_id"]}, headers={"Prefer": "respond-async"})
    assert r.status_code == 200 and r.json()["status"] == "running", r.text
    return r.json()["scan_id"]


def assert_exact(api: httpx.Client, scan_id: str, rows: list[dict]) -> None:
    """The scan's answer is the oracle's (harness.data.expected: the documented semantics, in plain Python)."""
    want = data.expected(rows)
    scan = settled(api, scan_id)
    assert scan["status"] == "completed", scan
    assert scan["record_count"] == len(rows) and scan["violation_count"] == sum(len(v) for v in want.values())
    assert scan["compliance_score"] == data.score(len(rows), data.by_severity(want))
    violations = all_violations(api, scan_id)
    assert len({v["id"] for v in violations}) == len(violations)
    for rule_id, signatures in want.items():
        assert sorted(v["signature"] for v in violations if v["rule_id"] == rule_id) == sorted(signatures), rule_id


def findings_of(api: httpx.Client, scan_id: str) -> list[dict]:
    findings, cursor = [], None
    while True:
        page = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        r = api.get(f"/api/v1/scans/{scan_id}/findings", params=page)
        findings += ok(r)
        cursor = r.json()["pagination"]["next_cursor"]
        if cursor is None:
            return findings


def assert_found_what_was_planted(api: httpx.Client, scan_id: str, corpus) -> None:
    done = sensitive_settled(api, scan_id)
    assert done["status"] == "completed", done
    assert done["progress"]["files_processed"] == len(corpus.files) and done["progress"]["files_failed"] == 0
    findings = findings_of(api, scan_id)
    truth = Counter(family for _, _, family in corpus.truth)
    assert Counter(f["family"] for f in findings) == truth
    assert len({f["finding_id"] for f in findings}) == len(findings) == done["progress"]["findings_count"]


def cached(host, key: str) -> bool:
    return (host / "blob-cache" / key[:2] / key).is_file()


def in_bucket(world) -> set[str]:
    client, found, token = world.s3.client(), set(), None
    while True:
        page = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/", **({"ContinuationToken": token} if token
                                                                              else {}))
        found |= {o["Key"].removeprefix(f"{PREFIX}/") for o in page.get("Contents", [])}
        if not page.get("IsTruncated"):
            return found
        token = page["NextContinuationToken"]


def test_a_compliance_scan_with_the_api_and_the_worker_on_two_hosts_is_exact(world):
    api = world.api
    pol = policy(api)
    rows = data.transactions(3000, seed=11)
    csv = data.to_csv(rows)
    up = upload(api, csv)
    mapping = confirm(api, up["upload_id"])  # its warnings read a sample of the table: host A's file
    scan_id = start_compliance(api, pol, up, mapping)
    assert_exact(api, scan_id, rows)
    # the blobs: in the bucket; the raw upload on the API's host only (the worker reads the Arrow table),
    # the table and the 12 unit files on the worker's host, which planned them; no local store on either
    raw = hashlib.sha256(csv).hexdigest()
    assert raw in in_bucket(world) and cached(world.host_a, raw) and not cached(world.host_b, raw)
    worker_blobs = {p.name for p in (world.host_b / "blob-cache").rglob("*") if p.is_file()}
    assert len(worker_blobs) >= 13 and worker_blobs <= in_bucket(world)
    assert not (world.host_a / "blobs").exists() and not (world.host_b / "blobs").exists()


def test_a_sensitive_scan_of_an_s3_bucket_with_the_worker_on_another_host_finds_what_was_planted(world):
    body = {"connectors": [world.corpus_connector], "type": "full",
            "options": {"max_workers": 3, "file_types": FILE_TYPES}}
    started = ok(world.api.post("/api/v1/scans/parallel", json=body), 201)
    assert_found_what_was_planted(world.api, started["scan_id"], world.corpus)
    workers = ok(world.api.get(f"/api/v1/scans/{started['scan_id']}/workers"))
    assert len(workers) == 3 and sum(w["chunk"]["file_count"] for w in workers) == len(world.corpus.files)
    assert all(w["status"] == "completed" for w in workers)


def test_s3_stopped_while_scans_are_in_flight_then_started_again_they_end_exact(world):
    """S3 stops after the upload; a compliance scan and a sensitive-data scan are started during the
    outage (the API needs no blob to start one); the worker cannot plan them and plans again until S3
    is back; an upload meanwhile is a 503. Then every scan ends final with exactly the oracle's answer."""
    api = world.api
    pol = policy(api, name="outage")
    rows = data.transactions(2400, seed=12)
    up = upload(api, data.to_csv(rows))
    mapping = confirm(api, up["upload_id"])
    log = world.system.data_dir / "worker.log"
    retries_before = log.read_text(errors="replace").count(RETRIED)
    world.s3.stop()
    try:
        scan_id = start_compliance(api, pol, up, mapping)
        sensitive = ok(api.post("/api/v1/scans/parallel", json={
            "connectors": [world.lake_connector], "type": "full",
            "options": {"max_workers": 2, "file_types": FILE_TYPES}}), 201)["scan_id"]
        until(lambda: log.read_text(errors="replace").count(RETRIED) > retries_before + 1)  # met it, and again
        assert api.get(f"/api/scan/{scan_id}").json()["status"] in ("pending", "queued", "running")
        assert ok(api.get(f"/api/v1/scans/{sensitive}"))["status"] in ("queued", "running")
        r = api.post("/api/upload", files={"file": ("later.csv", data.to_csv(rows[:10]), "text/csv")})
        assert r.status_code == 503 and r.json()["error"] == "UNAVAILABLE" and r.headers["Retry-After"], r.text
    finally:
        world.s3.start()
    assert_exact(api, scan_id, rows)
    assert_found_what_was_planted(api, sensitive, world.lake)
    assert not world.system.exited()  # nobody died of it


def test_s3_stopped_while_a_byoc_scan_waits_for_its_workers_then_started_again_it_ends_exact(world, tmp_path):
    """A BYOC scan is running, its chunks offered: their file lists are in the bucket, written by the
    worker's host. S3 stops: the API cannot give the deployment config (a 503, no worker token issued),
    S3 is back: it can, and a customer's worker scans the chunks to exactly what was planted."""
    api = world.api
    body = {"connectors": [world.lake_connector], "type": "full",
            "options": {"max_workers": 2, "execution": "byoc", "file_types": FILE_TYPES}}
    scan_id = ok(api.post("/api/v1/scans/parallel", json=body), 201)["scan_id"]
    until(lambda: ok(api.get(f"/api/v1/scans/{scan_id}"))["status"] == "running")  # chunks offered, no worker
    world.s3.stop()
    try:
        r = api.get(f"/api/v1/scans/{scan_id}/deployment-config")
        assert r.status_code == 503 and r.json()["error"] == "UNAVAILABLE" and r.headers["Retry-After"], r.text
    finally:
        world.s3.start()
    config = ok(api.get(f"/api/v1/scans/{scan_id}/deployment-config"))
    assert sum(len(chunk["files"]) for chunk in config["chunks"]) == len(world.lake.files)
    cwd = tmp_path / "customer"
    cwd.mkdir()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "SCANLEDGER_DATASTORE_ROOT": str(world.root),
           **config["environment"]}
    with open(tmp_path / "scan-worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "cli.main", "scan-worker"], env=env, cwd=cwd, stdout=log,
                                  stderr=subprocess.STDOUT)
        until(lambda: worker.poll() is not None)
    assert worker.returncode == 0, (tmp_path / "scan-worker.log").read_text()
    assert_found_what_was_planted(api, scan_id, world.lake)
