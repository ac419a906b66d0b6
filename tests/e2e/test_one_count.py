"""One count per run (issue 20), on the real broker: a compliance scan's violation_count (GET
/api/scan/{id}), its violation list's total, its run's anomalies_identified and its run's
summary.violation_count agree at every moment of an abort, a resume and a rerun, and each ends
at the uninterrupted scan's count. Property-style: the aborts land at random points (a seeded
RNG), and every reading is checked.

The four numbers are read with four requests, so a reading is taken twice: when nothing moved
between the two rounds it is one moment, and the numbers must agree (the scan's own count is 0
while it is in progress, as seed 001 documents). Waits poll until the system answers."""
from __future__ import annotations

import random
import time

import pytest

from harness import data
from tests.e2e.helpers import confirm, upload
from tests.e2e.monitor_fixtures import in_workspace
from tests.e2e.test_operations import start_compliance

RECORDS = 20_000  # ~29 units of the test system's 700 records: an abort lands among them
TRIALS = 3


@pytest.fixture(scope="module")
def ws(system):
    with in_workspace(system, "One count") as ws:
        ws.up = upload(ws.admin, data.to_csv(data.transactions(RECORDS, seed=20)))
        ws.mapping = confirm(ws.admin, ws.up["upload_id"])
        ws.policy = ws.admin.post("/api/policies", json={"name": "AML", "rules": data.RULES}).json()
        yield ws


def reading(client, scan_id: str, run_id: int) -> tuple:
    scan = client.get(f"/api/scan/{scan_id}").json()
    listed = client.get(f"/api/scan/{scan_id}/violations", params={"size": 1}).json()["total"]
    (item,) = client.get("/api/operations", params={"id": run_id}).json()["items"]
    detail = client.get(f"/api/operations/{run_id}").json()
    return (scan["status"], scan["violation_count"], listed, item["status"]["anomalies_identified"],
            detail["summary"]["violation_count"], item["result"])


def observe(client, scan_id: str, run_id: int, until: set[str], seen: list) -> tuple:
    """Read until the scan's status is one of `until` and stays put; check every reading that is one moment."""
    while True:
        first, second = reading(client, scan_id, run_id), reading(client, scan_id, run_id)
        if first != second:
            continue  # something moved between the requests: not one moment
        status, shown, listed, anomalies, summary, _ = first
        assert listed == anomalies == summary, first
        assert shown == (0 if status in ("pending", "running") else listed), first
        seen.append(first)
        if status in until:
            return first
        time.sleep(0.05)


def partitions(client, run_id: int) -> list[tuple]:
    return [(c["result"], c["records_processed"], c["anomaly_count"])
            for c in client.get(f"/api/operations/{run_id}/containers").json()["items"]]


def test_the_four_counts_agree_through_random_aborts_resumes_and_reruns(ws):
    admin = ws.admin
    scan_id, run_id = start_compliance(admin, ws.policy["id"], ws.up, ws.mapping)
    seen: list = []
    expected = observe(admin, scan_id, run_id, {"completed"}, seen)[1]
    assert expected > 0
    reference = partitions(admin, run_id)
    assert sum(records for _, records, _ in reference) == RECORDS
    rng = random.Random(20261206)
    for trial in range(TRIALS):
        scan_id, run_id = start_compliance(admin, ws.policy["id"], ws.up, ws.mapping)
        time.sleep(rng.uniform(0.0, 1.5))
        aborted = admin.put(f"/api/operations/abort/{run_id}")
        assert aborted.status_code in (200, 409), aborted.text  # 409: it had finished already
        stopped = observe(admin, scan_id, run_id, {"aborted", "completed"}, seen)
        if stopped[0] == "aborted":
            assert stopped[1] <= expected, (trial, stopped)  # what it found before it stopped, counted once
            resumed = admin.put(f"/api/operations/run/{run_id}")
            assert resumed.status_code == 200, resumed.text
        done = observe(admin, scan_id, run_id, {"completed"}, seen)
        assert done[1] == expected, (trial, done)
        # every partition shows what it processed and found, those finished before the abort too: as the
        # uninterrupted run's partitions do (a partition may hold no record: records go by account)
        assert partitions(admin, run_id) == reference, trial
        rerun = admin.put(f"/api/operations/rerun/{run_id}")
        assert rerun.status_code == 200, rerun.text
        new_run = rerun.json()["id"]
        new_scan = admin.get(f"/api/operations/{new_run}").json()["scan_id"]
        assert observe(admin, new_scan, new_run, {"completed"}, seen)[1] == expected
    assert any(s[0] == "aborted" for s in seen)  # at least one abort landed mid-scan and was read
