"""BYOC scans (issue 13) on the real system and a real S3 server: `scanledger scan-worker` run as
separate OS processes with nothing but the environment GET …/deployment-config gives (and, as a
customer's worker would, the S3 credentials of its own environment), scanning a local_dir and an
S3 connector to exactly the findings and coverage of the same scan run in-cluster; a worker
SIGKILLed mid-chunk loses its lease and the other finishes its chunk, nothing counted twice; a
cancel stops the workers; the worker token reaches its scan's report and nothing else, and dies
with its scan. Waits poll until the system answers: no time limits."""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from harness import databases
from harness.corpus import generate
from harness.system import ROOT, System
from tests.e2e.helpers import rows
from tests.e2e.monitor_fixtures import in_workspace
from tests.e2e.test_sensitive_scans import error, ok, settled, until

KEY_ID_ENV, SECRET_ENV = "SCANLEDGER_SECRET_BYOC_KEY_ID", "SCANLEDGER_SECRET_BYOC_SECRET"
BULK_FILES = 3000


@pytest.fixture(scope="module")
def world(kafka, s3_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("byoc-root")
    corpus = generate(seed=43, files=24, rows=80)
    local, remote = corpus.files[::2], corpus.files[1::2]
    for f in local:
        (root / "lake" / f.name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lake" / f.name).write_bytes(f.data)
    bulk = root / "bulk"
    bulk.mkdir()
    for i in range(BULK_FILES):
        (bulk / f"row_{i:05d}.txt").write_text(f"ticket {i} for jane.doe{i}@example.com\n" + "filler text\n" * 40)
    bucket = s3_server.bucket(f"byoc-{uuid.uuid4().hex[:8]}", {f.name: f.data for f in remote})
    keys = {KEY_ID_ENV: s3_server.keys["aws_access_key_id"], SECRET_ENV: s3_server.keys["aws_secret_access_key"]}
    system = System(kafka, tmp_path_factory.mktemp("byoc-system"), SCANLEDGER_DATASTORE_ROOT=str(root),
                    SCANLEDGER_S3_ENDPOINTS=s3_server.url, SCANLEDGER_WORKER_LEASE_SECONDS="4", **keys)
    system.start()
    try:
        with in_workspace(system, "BYOC A") as a, in_workspace(system, "BYOC B") as b:
            lake = ok(a.admin.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                "config": {"path": "lake"}}), 201)["id"]
            s3 = ok(a.admin.post("/api/v1/connectors", json={"name": "Exports", "type": "s3", "config": {
                "bucket": bucket, "endpoint_url": s3_server.url, "region": "us-east-1",
                "credentials": {"source": "env", "access_key_id_env": KEY_ID_ENV,
                                "secret_access_key_env": SECRET_ENV}}}), 201)["id"]
            bulk_conn = ok(a.admin.post("/api/v1/connectors", json={"name": "Bulk", "type": "local_dir",
                                                                     "config": {"path": "bulk"}}), 201)["id"]
            yield {"system": system, "a": a, "b": b, "root": root, "keys": keys, "bucket": bucket,
                   "lake": lake, "s3": s3, "bulk": bulk_conn, "logs": tmp_path_factory.mktemp("byoc-workers")}
    finally:
        system.stop()


def start_worker(world, environment: dict, name: str, root: Path | str | None = "", keys: bool = True,
                 ) -> subprocess.Popen:
    """A customer's worker: the deployment-config's environment, its own S3 credentials and
    SCANLEDGER_DATASTORE_ROOT (its local_dir paths are read under it), run in an empty directory of
    its own, as a container with the data on a mounted volume would be. `root=None`: no root set,
    run in the data's directory instead (the default root is the working directory). PATH and
    PYTHONPATH only find this checkout."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **environment, **(world["keys"] if keys else {})}
    if root is not None:
        env["SCANLEDGER_DATASTORE_ROOT"] = str(root or world["root"])
    cwd = world["root"] if root is None else world["logs"] / f"{name}-cwd"
    cwd.mkdir(exist_ok=True)
    log = open(world["logs"] / f"{name}.log", "ab")  # noqa: SIM115 (the child's output for its life)
    return subprocess.Popen([sys.executable, "-m", "cli.main", "scan-worker"], env=env, cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT)


def worker_log(world, name: str) -> str:
    return (world["logs"] / f"{name}.log").read_text()


def exited(process: subprocess.Popen) -> int:
    until(lambda: process.poll() is not None)
    return process.returncode


def findings(client, scan_id) -> dict:
    out, cursor = {}, None
    while True:
        r = client.get(f"/api/v1/scans/{scan_id}/findings",
                       params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        for f in ok(r):
            out[f["finding_id"]] = {k: f[k] for k in ("connector_id", "file", "location", "offset", "detector",
                                                      "family", "confidence", "masked_sample")}
        cursor = r.json()["pagination"]["next_cursor"]
        if cursor is None:
            return out


def in_cluster(world, connectors, max_workers) -> tuple[dict, dict]:
    admin = world["a"].admin
    scan_id = ok(admin.post("/api/v1/scans/parallel", json={"connectors": connectors, "type": "full",
                                                             "options": {"max_workers": max_workers}}), 201)["scan_id"]
    return settled(admin, scan_id), findings(admin, scan_id)


def byoc(world, connectors, max_workers) -> tuple[str, dict]:
    started = ok(world["a"].member.post("/api/v1/scans/parallel", json={
        "connectors": connectors, "type": "full", "options": {"max_workers": max_workers, "execution": "byoc"}}), 201)
    assert started["status"] == "queued"
    config = ok(world["a"].member.get(f"/api/v1/scans/{started['scan_id']}/deployment-config"))
    return started["scan_id"], config


def test_two_external_workers_scan_to_exactly_the_in_cluster_result(world):
    admin = world["a"].admin
    expected, expected_findings = in_cluster(world, [world["lake"], world["s3"]], 4)
    assert expected["status"] == "completed" and expected_findings
    scan_id, config = byoc(world, [world["lake"], world["s3"]], 4)
    assert set(config) == {"container_image", "environment", "chunks"}
    assert config["container_image"].startswith("scanledger/scan-worker:")
    env = config["environment"]
    assert set(env) == {"SCAN_ID", "COORDINATOR_URL", "AUTH_TOKEN"} and env["SCAN_ID"] == scan_id
    assert env["COORDINATOR_URL"] == f"{world['system'].url}/api/v1/scans/{scan_id}/report"
    assert [k["chunk_id"] for k in config["chunks"]] == [f"{scan_id}.c{i}" for i in range(4)]
    uris = [u for k in config["chunks"] for u in k["files"]]
    assert len(uris) == expected["coverage"]["total_enumerated"] == 24
    assert {u.split("/", 1)[0] for u in uris} == {"lake", "s3:"}
    assert all(u.startswith(f"s3://{world['bucket']}/") for u in uris if u.startswith("s3:"))
    configs = [k["connector_config"] for k in config["chunks"]]
    assert {"connector_id": world["lake"], "type": "local_dir", "path": "lake"} in configs
    assert any(cfg.get("type") == "s3" and cfg["bucket"] == world["bucket"] for cfg in configs)
    text = str(config)
    assert "resolved_path" not in text and all(secret not in text for secret in world["keys"].values())
    assert ok(admin.get(f"/api/v1/scans/{scan_id}"))["status"] == "running"  # its chunks wait for workers

    workers = [start_worker(world, env, f"pair-{i}") for i in range(2)]
    assert [exited(w) for w in workers] == [0, 0]  # no chunk left: each exits by itself
    done = settled(admin, scan_id)
    assert done["status"] == "completed"
    assert done["coverage"] == expected["coverage"] and done["progress"]["findings_count"] == len(expected_findings)
    assert findings(admin, scan_id) == expected_findings
    chunks = ok(admin.get(f"/api/v1/scans/{scan_id}/workers"))
    assert [w["status"] for w in chunks] == ["completed"] * 4
    assert {w["external_worker"]["id"] for w in chunks} <= {f"{socket.gethostname()}-{w.pid}" for w in workers}
    # its token ended with the scan
    with httpx.Client(headers={"Authorization": f"Bearer {env['AUTH_TOKEN']}"}) as worker:
        error(worker.post(env["COORDINATOR_URL"], json={"type": "claim", "worker_id": "late"}), 401, "UNAUTHORIZED")


def test_a_worker_killed_mid_chunk_loses_its_lease_to_the_other_and_nothing_counts_twice(world):
    admin = world["a"].admin
    expected, expected_findings = in_cluster(world, [world["bulk"]], 2)
    assert expected["status"] == "completed" and len(expected_findings) == BULK_FILES
    scan_id, config = byoc(world, [world["bulk"]], 2)
    # these two run in the data's directory with no root set (the default root is the working directory)
    victim = start_worker(world, config["environment"], "victim", root=None)
    survivor = start_worker(world, config["environment"], "survivor", root=None)
    victim_id = f"{socket.gethostname()}-{victim.pid}"

    def mid_chunk():
        return next((w for w in ok(admin.get(f"/api/v1/scans/{scan_id}/workers"))
                     if w.get("external_worker", {}).get("id") == victim_id
                     and 0 < w["progress"]["files_processed"] < w["chunk"]["file_count"]), None)

    held = until(mid_chunk)
    victim.send_signal(signal.SIGKILL)
    assert exited(victim) == -signal.SIGKILL
    assert exited(survivor) == 0
    done = settled(admin, scan_id)
    assert done["status"] == "completed"
    assert done["coverage"] == expected["coverage"] and done["coverage"]["total_scanned"] == BULK_FILES
    assert findings(admin, scan_id) == expected_findings  # every file once, every finding once
    chunks = {w["worker_id"]: w for w in ok(admin.get(f"/api/v1/scans/{scan_id}/workers"))}
    taken_over = chunks[held["worker_id"]]
    assert taken_over["external_worker"] == {"id": f"{socket.gethostname()}-{survivor.pid}", "claims": 2}
    assert taken_over["status"] == "completed" and taken_over["progress"]["files_processed"] == \
        taken_over["chunk"]["file_count"]


def test_a_worker_that_cannot_reach_the_data_says_which_setting_and_scans_nothing(world, tmp_path):
    admin = world["a"].admin
    expected, expected_findings = in_cluster(world, [world["lake"], world["s3"]], 1)
    scan_id, config = byoc(world, [world["lake"], world["s3"]], 1)
    env = config["environment"]

    def not_scanned():
        scan = ok(admin.get(f"/api/v1/scans/{scan_id}"))
        [chunk] = ok(admin.get(f"/api/v1/scans/{scan_id}/workers"))
        assert scan["status"] == "running" and scan["progress"]["files_processed"] == 0
        assert scan["coverage"]["total_failed"] == scan["coverage"]["total_scanned"] == 0
        assert chunk["status"] == "queued" and chunk["progress"]["files_processed"] == 0

    # a root that does not hold the connector's path (empty), and one that does not exist
    for name, root in (("empty-root", tmp_path), ("no-root", tmp_path / "nowhere")):
        wrong = start_worker(world, env, name, root=root)
        assert exited(wrong) == 2
        lines = [line for line in worker_log(world, name).splitlines() if "cannot read the data" in line]
        assert len(lines) == 1 and "SCANLEDGER_DATASTORE_ROOT" in lines[0] and str(root) in lines[0]
        assert "Traceback" not in worker_log(world, name)
        not_scanned()
    # the S3 keys missing from its environment: it names the variables to set
    keyless = start_worker(world, env, "keyless", keys=False)
    assert exited(keyless) == 2
    assert f"set {KEY_ID_ENV} and {SECRET_ENV}" in worker_log(world, "keyless")
    not_scanned()
    # the chunk was released, not left to a lease: a worker set up right takes it at once and finishes
    right = start_worker(world, env, "right-root")
    assert exited(right) == 0
    done = settled(admin, scan_id)
    assert done["status"] == "completed" and done["coverage"] == expected["coverage"]
    assert findings(admin, scan_id) == expected_findings
    [chunk] = ok(admin.get(f"/api/v1/scans/{scan_id}/workers"))
    assert chunk["external_worker"] == {"id": f"{socket.gethostname()}-{right.pid}", "claims": 4}


def test_a_cancel_stops_the_external_workers(world):
    admin = world["a"].admin
    scan_id, config = byoc(world, [world["bulk"]], 1)
    worker = start_worker(world, config["environment"], "cancelled")
    until(lambda: ok(admin.get(f"/api/v1/scans/{scan_id}"))["progress"]["files_processed"] > 0)
    cancelled = ok(admin.post(f"/api/v1/scans/{scan_id}/cancel"))
    assert cancelled["status"] == "cancelled"
    assert exited(worker) == 0  # it read the cancel from its next report (401) and stopped
    time.sleep(1)
    done = settled(admin, scan_id)
    assert done["status"] == "cancelled" and 0 < done["progress"]["files_processed"] < BULK_FILES
    error(admin.get(f"/api/v1/scans/{scan_id}/deployment-config"), 409, "CONFLICT")


def test_the_worker_token_reaches_its_scans_report_only(world):
    a, b = world["a"], world["b"]
    scan_id, config = byoc(world, [world["lake"]], 2)
    other_id, other = byoc(world, [world["lake"]], 1)
    report = config["environment"]["COORDINATOR_URL"]
    token = config["environment"]["AUTH_TOKEN"]
    with world["system"].client(token) as worker:
        # its own scan: a claim, then a heartbeat and a report on the chunk it holds
        claim = ok(worker.post(report, json={"type": "claim", "worker_id": "probe"}))
        chunk = claim["chunk"]
        assert chunk["chunk_id"] == f"{scan_id}.c0" and claim["open_chunks"] == 2
        assert chunk["work"]["data"]["files"] and "blob" not in chunk["work"]["data"]
        assert all(secret not in str(claim) for secret in world["keys"].values())
        lease = {"chunk_id": chunk["chunk_id"], "lease_id": chunk["lease_id"]}
        assert ok(worker.post(report, json={"type": "heartbeat", **lease}))["accepted"] == 0
        # what it does not hold, or made up, is refused: nothing reaches the ledger
        bad = worker.post(report, json={"type": "events", **lease, "events": [{"type": "finding.detected"}]})
        assert error(bad, 400, "VALIDATION_ERROR")["details"][0]["path"][:2] == ["events", 0]
        error(worker.post(report, json={"type": "events", "chunk_id": chunk["chunk_id"], "lease_id": "stolen",
                                        "events": [{"type": "x", "data": {}}]}), 409, "CONFLICT")
        error(worker.post(report, json={"type": "unknown"}), 400, "VALIDATION_ERROR")
        # every other route: 403, its own scan's reads included; another scan's report too
        for method, path in (("GET", f"/api/v1/scans/{scan_id}"), ("GET", f"/api/v1/scans/{scan_id}/findings"),
                             ("GET", f"/api/v1/scans/{scan_id}/deployment-config"), ("GET", "/api/v1/scans"),
                             ("POST", f"/api/v1/scans/{scan_id}/cancel"), ("POST", "/api/v1/scans/parallel"),
                             ("GET", "/api/v1/connectors"), ("GET", "/api/tokens"), ("POST", "/api/workspaces"),
                             ("GET", "/api/operations"), ("POST", "/api/scan/run"),
                             ("POST", f"/api/v1/scans/{other_id}/report")):
            error(worker.request(method, path, json={"type": "claim", "worker_id": "x"}), 403, "FORBIDDEN")
    # the deployment-config: Admin and Member; a Viewer 403; another workspace 404; an in-cluster scan 409
    error(a.viewer.get(f"/api/v1/scans/{scan_id}/deployment-config"), 403, "FORBIDDEN")
    error(b.admin.get(f"/api/v1/scans/{scan_id}/deployment-config"), 404, "NOT_FOUND")
    error(a.admin.get(f"/api/v1/scans/{scan_id}x/deployment-config"), 404, "NOT_FOUND")  # an id never given out
    assert ok(a.admin.get(f"/api/v1/scans/{scan_id}/deployment-config"))["environment"]["AUTH_TOKEN"] != token
    in_cluster_scan = ok(a.admin.post("/api/v1/scans/parallel", json={"connectors": [world["lake"]],
                                                                      "type": "full"}), 201)["scan_id"]
    error(a.admin.get(f"/api/v1/scans/{in_cluster_scan}/deployment-config"), 409, "CONFLICT")
    # workspace B's token on A's report: 403 (no role but a worker's reports)
    error(b.admin.post(report, json={"type": "claim", "worker_id": "x"}), 403, "FORBIDDEN")
    # cancelled: both scans' tokens stop working at once (401)
    for sid, cfg in ((scan_id, config), (other_id, other)):
        ok(a.admin.post(f"/api/v1/scans/{sid}/cancel"))
        with world["system"].client(cfg["environment"]["AUTH_TOKEN"]) as dead:
            error(dead.post(cfg["environment"]["COORDINATOR_URL"], json={"type": "claim", "worker_id": "x"}), 401,
                  "UNAUTHORIZED")
    assert token not in databases.stored_text(world["system"].db_url)  # hashed at rest


def test_a_byoc_scans_history_names_its_worker_for_each_report(world):
    member = world["a"].member
    before = datetime.now(UTC)
    scan_id, config = byoc(world, [world["lake"]], 2)
    waiting, waiting_at = steady(member, scan_id)  # no worker yet: started, its chunks waiting
    worker = start_worker(world, config["environment"], "history")
    assert exited(worker) == 0
    done = settled(member, scan_id)
    assert done["status"] == "completed"
    done_at = datetime.now(UTC)
    # as of those instants, from the log: what the API said then (the clock-driven elapsed time aside)
    then = ok(member.get(f"/api/v1/scans/{scan_id}", params={"as_of": waiting_at.isoformat()}))
    assert then["status"] == waiting["status"] == "running"
    assert unclocked(then) == unclocked(waiting)
    assert ok(member.get(f"/api/v1/scans/{scan_id}", params={"as_of": done_at.isoformat()})) == done
    error(member.get(f"/api/v1/scans/{scan_id}", params={"as_of": before.isoformat()}), 404, "NOT_FOUND")
    tokens = {t["role"]: t["id"] for t in world["a"].admin.get("/api/tokens").json()["items"]}
    r = member.get(f"/api/scans/{scan_id}/history", params={"limit": 1000})
    items = r.json()["items"]
    kinds = [i["type"] for i in items]
    assert kinds[:2] == ["scanledger.command.run-scan.v1", "scanledger.scan.requested.v1"]
    assert kinds.count("scanledger.scan.chunk.offered.v1") == 2 and kinds[-1] == "scanledger.scan.finished.v1"
    assert items[0]["actor"] == {"token_id": tokens["Member"], "role": "Member"}
    reports = [i for i in items if i["source"] == "scanledger/byoc-worker"]
    assert {i["type"] for i in reports} >= {"scanledger.scan.file.outcome.v1", "scanledger.scan.unit.completed.v1"}
    worker_id = f"{socket.gethostname()}-{worker.pid}"
    assert all(i["actor"]["role"] == "Worker" and i["actor"]["worker_id"] == worker_id for i in reports)
    assert len({i["actor"]["token_id"] for i in reports}) == 1  # the scan's worker token, by its id
    assert env_token_absent(items, config["environment"]["AUTH_TOKEN"])
    log = world["system"].cli("history", scan_id, "--json").stdout.splitlines()
    assert [orjson.loads(line)["id"] for line in log] == [i["id"] for i in items]
    # the API chained the worker's reports (one chain per chunk): every record of the scan is vouched for
    verified = world["system"].cli("verify", "--scan", scan_id).stdout
    assert verified.startswith(f"scan {scan_id}: ok, ") and "not reached" not in verified, verified
    # the scan's worker token is config on the log: its hash, never the token; replay rebuilds it
    token_hash = hashlib.sha256(config["environment"]["AUTH_TOKEN"].encode()).hexdigest()
    versions = world["system"].cli("config-history", "--table", "worker_tokens", "--json").stdout
    assert token_hash in versions and config["environment"]["AUTH_TOKEN"] not in versions
    target = databases.scratch(world["logs"], "replayed")
    world["system"].cli("replay", "--into", target)
    assert rows(target, "worker_tokens") == rows(world["system"].db_url, "worker_tokens") != []


def unclocked(view: dict) -> dict:
    """A scan's view without its clock-driven elapsed time."""
    return {**view, "progress": {**view["progress"], "elapsed_seconds": 0}}


def steady(client, scan_id) -> tuple[dict, datetime]:
    """The scan's view once it has started and two reads a second apart agree (the projector has applied
    what the log holds of it: the live answer lags the log by the projector's batch), and an instant
    just after them: what `?as_of=` that instant must say."""
    before = until(lambda: (d := ok(client.get(f"/api/v1/scans/{scan_id}")))["status"] == "running" and d)
    while True:
        time.sleep(1)
        now = ok(client.get(f"/api/v1/scans/{scan_id}"))
        if unclocked(now) == unclocked(before):
            return now, datetime.now(UTC)
        before = now


def env_token_absent(items, token: str) -> bool:
    return token not in orjson.dumps(items).decode()
