"""Seed 003's answers to resume and rerun, exactly: the new attempt, running, with its new
dispatch time, never the result it may already have reached; and the resume of a run whose
every container finished after its abort completes at once.

Named to run after test_operations and before test_replay_restart, so the replay covers these runs."""
from __future__ import annotations

import random
import time

import pytest

from harness import data
from tests.e2e.helpers import confirm, upload
from tests.e2e.monitor_fixtures import in_workspace, sync
from tests.e2e.test_operations import BROKEN_RULE, start_compliance, wait_result

SLOW_ROWS = 80_000
# RE2 cannot build a DFA for this over random a/b strings and falls back to its NFA: several
# seconds over the file, all of it after the evaluator's last check for an abort.
SLOW = {"name": "Slow pattern", "type": "pattern", "params": {"column": "s", "regex": "[ab]*a[ab]{20}c"}}
QUICK = {"name": "Has rows", "type": "record_count", "params": {"min": 1}}


@pytest.fixture(scope="module")
def ws(system):
    root = system.datastore_root / "resume"
    root.mkdir()
    rng = random.Random(3)
    lines = ("".join(rng.choices("ab", k=100)) for _ in range(SLOW_ROWS))
    (root / "slow.csv").write_text("s\n" + "\n".join(lines) + "\n")
    with in_workspace(system, "Resume") as ws:
        store = ws.admin.post("/api/datastores", json={"name": "Resume", "type": "local_dir", "path": "resume"})
        assert store.status_code == 201, store.text
        ws.store = store.json()
        (ws.asset,) = sync(ws.admin, ws.store["id"])
        ws.sync = only_run(ws.admin)["id"]
        yield ws


def only_run(client, **params) -> dict:
    (item,) = client.get("/api/operations", params=params).json()["items"]
    return item


def run_of(client, scan_id: str) -> int:
    """The run id of a scan, once the Activity list shows it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for item in client.get("/api/operations").json()["items"]:
            if client.get(f"/api/operations/{item['id']}").json().get("scan_id") == scan_id:
                return item["id"]
        time.sleep(0.05)
    raise AssertionError(f"scan {scan_id} never reached the Activity list")


def assert_dispatched(answer: dict, before: dict | None = None) -> None:
    """Seed 003: running (or briefly queued), no end time; a resume's start time is new."""
    assert answer["result"] in ("queued", "running") and answer["end_time"] is None, answer
    if before is not None:
        assert answer["result"] == "running" and answer["start_time"] > before["start_time"], (before, answer)


def test_rerun_of_a_run_that_finishes_at_once_answers_it_running(ws):
    a = ws.admin
    r = a.put(f"/api/operations/rerun/{ws.sync}")
    assert r.status_code == 200, r.text
    new = r.json()
    assert_dispatched(new)
    assert new["id"] != ws.sync and new["type"] == "catalog"
    assert wait_result(a, new["id"])["result"] == "success"


def test_resume_of_a_failed_run_answers_the_new_attempt_running(ws):
    a = ws.admin
    up = upload(a, data.to_csv(data.transactions(200, seed=8)))
    mapping = confirm(a, up["upload_id"])
    bad = a.post("/api/policies", json={"name": "bad", "rules": BROKEN_RULE}).json()
    _, op = start_compliance(a, bad["id"], up, mapping)
    before = wait_result(a, op)
    assert before["result"] == "failure"
    r = a.put(f"/api/operations/run/{op}")  # fails again at once: the answer is still the new attempt
    assert r.status_code == 200, r.text
    assert_dispatched(r.json(), before)
    after = wait_result(a, op)
    assert after["result"] == "failure" and after["start_time"] == r.json()["start_time"]


def test_resume_of_an_aborted_run_whose_every_container_finished_completes(ws):
    a = ws.admin
    for monitor in (QUICK, SLOW):  # the quick one first: the slow one runs after the last abort check
        r = a.post(f"/api/assets/{ws.asset['id']}/monitors", json=monitor)
        assert r.status_code == 201, r.text
    r = a.post("/api/scan/run")
    assert r.status_code == 202, r.text
    op = run_of(a, r.json()["data"]["executionId"])

    deadline = time.monotonic() + 120
    while True:  # until the slow monitor runs: the container can no longer stop
        (asset,) = a.get("/api/assets/scan-status").json()["data"]
        run = asset["currentRun"]
        if run and run["monitors"][1]["stage"] == "running":
            break
        assert time.monotonic() < deadline and asset["lastRun"] is None, asset
        time.sleep(0.02)
    r = a.put(f"/api/operations/abort/{op}")
    assert r.status_code == 200, r.text
    aborted = wait_result(a, op, ("aborted",))
    deadline = time.monotonic() + 120
    while (containers := a.get(f"/api/operations/{op}/containers").json()["items"])[0]["result"] != "success":
        assert time.monotonic() < deadline, containers  # the container finishes anyway, after the abort
        time.sleep(0.05)
    assert a.get(f"/api/operations/{op}").json()["result"] == "aborted"

    r = a.put(f"/api/operations/run/{op}")
    assert r.status_code == 200, r.text
    assert_dispatched(r.json(), aborted)
    done = wait_result(a, op, ("success", "failure"), timeout_s=30)  # nothing left to run: done at once
    assert done["result"] == "success" and done["end_time"] is not None
    assert done["start_time"] == r.json()["start_time"]
    assert done["status"]["containers_analyzed"] == done["status"]["total_containers"] == 1
    assert done["status"]["anomalies_identified"] == 1  # the pattern's anomaly, found once
    assert a.put(f"/api/operations/run/{op}").status_code == 409  # completed: nothing to resume
