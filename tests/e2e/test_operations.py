"""Seed 003 end to end: the Activity list over every kind of run, and abort, resume, rerun, delete."""
from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from harness import data
from tests.e2e.helpers import all_violations, confirm, upload
from tests.e2e.monitor_fixtures import in_workspace, sync, wait_finished

# Every record breaks each of these rules: a scan of 20,000 records emits 300,000 violations,
# long enough to be caught in flight.
HEAVY_RULES = [{"id": f"h{i}", "name": f"Heavy {i}", "type": "threshold", "severity": "low",
                "params": {"field": "amount", "op": "gt", "value": -1}} for i in range(15)]
BROKEN_RULE = [{"id": "bad", "name": "Currency as a number", "type": "threshold", "severity": "high",
                "params": {"field": "Currency", "op": "gt", "value": 1}}]
ASYNC = {"Prefer": "respond-async"}


def wait_result(client, op_id: int, results=("success", "failure", "aborted"), timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.get(f"/api/operations/{op_id}")
        assert r.status_code == 200, r.text
        if r.json()["result"] in results:
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"run {op_id} never reached {results}")


def start_compliance(client, policy_id: str, up: dict, mapping: dict) -> tuple[str, int]:
    r = client.post("/api/scan/run", headers=ASYNC, json={"policy_id": policy_id, "upload_id": up["upload_id"],
                                                          "mapping_id": mapping["mapping_id"]})
    assert r.status_code == 200, r.text
    scan_id = r.json()["scan_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for item in client.get("/api/operations", params={"size": 1000}).json()["items"]:
            if client.get(f"/api/operations/{item['id']}").json().get("scan_id") == scan_id:
                return scan_id, item["id"]
        time.sleep(0.05)
    raise AssertionError("the run never reached the Activity list")


@pytest.fixture(scope="module")
def runs(system):
    """A workspace with one run of each outcome, each with a known answer."""
    root = system.datastore_root / "ops"
    root.mkdir()
    (root / "a.csv").write_text("x\n1\n2\n")
    with in_workspace(system, "Operations") as ws:
        admin = ws.admin
        up = upload(admin, data.to_csv(data.transactions(500, seed=5)))
        mapping = confirm(admin, up["upload_id"])
        good = admin.post("/api/policies", json={"name": "good", "rules": data.RULES}).json()
        bad = admin.post("/api/policies", json={"name": "bad", "rules": BROKEN_RULE}).json()
        ws.success_scan, ws.success = start_compliance(admin, good["id"], up, mapping)
        wait_result(admin, ws.success)
        _, ws.failure = start_compliance(admin, bad["id"], up, mapping)
        wait_result(admin, ws.failure)
        store = admin.post("/api/datastores", json={"name": "Ops", "type": "local_dir", "path": "ops"}).json()
        ws.store = store
        (ws.asset,) = sync(admin, store["id"])
        ws.catalog = max(i["id"] for i in admin.get("/api/operations").json()["items"])
        r = admin.post(f"/api/assets/{ws.asset['id']}/monitors",
                       json={"name": "rows", "type": "record_count", "params": {"min": 1}})
        assert r.status_code == 201, r.text
        execution = admin.post("/api/scan/run").json()["data"]["executionId"]
        wait_finished(admin, execution)
        ws.monitor = max(i["id"] for i in admin.get("/api/operations").json()["items"])
        ws.up, ws.mapping, ws.good = up, mapping, good
        yield ws


def ids(client, **params) -> list[int]:
    r = client.get("/api/operations", params={"size": 1000, **params})
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["items"]]


def test_list_items_are_shaped_as_documented(runs):
    body = runs.viewer.get("/api/operations").json()
    assert set(body) == {"items", "total", "page", "size", "pages"}
    assert body["total"] == 4 and body["page"] == 1 and body["size"] == 50 and body["pages"] == 1
    item = next(i for i in body["items"] if i["id"] == runs.success)
    assert set(item) == {"id", "type", "created", "start_time", "end_time", "result", "message", "triggered_by",
                         "datastore", "status"}
    assert item["type"] == "scan" and item["result"] == "success" and item["triggered_by"] == "admin"
    assert set(item["status"]) == {"total_containers", "containers_analyzed", "partitions_scanned",
                                   "records_processed", "anomalies_identified"}
    assert item["status"]["records_processed"] == 500
    expected = sum(len(v) for v in data.expected(data.transactions(500, seed=5)).values())
    assert item["status"]["anomalies_identified"] == expected
    catalog = next(i for i in body["items"] if i["id"] == runs.catalog)
    assert catalog["type"] == "catalog" and catalog["datastore"] == {"id": runs.store["id"], "name": "Ops"}
    monitor = next(i for i in body["items"] if i["id"] == runs.monitor)  # one datastore: named
    assert monitor["type"] == "scan" and monitor["datastore"] == {"id": runs.store["id"], "name": "Ops"}


def test_every_filter_and_sort(runs):
    v = runs.viewer
    everything = {runs.success, runs.failure, runs.catalog, runs.monitor}
    assert set(ids(v)) == everything
    assert ids(v) == sorted(everything, reverse=True)  # newest first by default
    assert ids(v, sort_created="asc") == sorted(everything)
    assert ids(v, id=runs.failure) == [runs.failure]
    assert ids(v, schedule_id=1) == []
    assert set(ids(v, operation_type="scan")) == {runs.success, runs.failure, runs.monitor}
    assert ids(v, operation_type="catalog") == [runs.catalog]
    assert ids(v, operation_type="promote") == []
    assert set(ids(v, finished="true")) == everything and ids(v, finished="false") == []
    assert set(ids(v, result="success")) == {runs.success, runs.catalog, runs.monitor}
    assert set(ids(v, result=["failure", "aborted"])) == {runs.failure}
    assert ids(v, result="running") == []
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    for field in ("created_date", "start_date", "end_date"):
        assert set(ids(v, **{field: today.isoformat()})) == everything
        assert ids(v, **{field: tomorrow.isoformat()}) == []
        assert set(ids(v, **{field: tomorrow.isoformat(), "offset": 1440})) == everything
    assert set(ids(v, datastore=runs.store["id"])) == {runs.catalog, runs.monitor}
    assert ids(v, datastore=[999999]) == []
    assert set(ids(v, container=runs.asset["id"])) == {runs.catalog, runs.monitor}
    assert ids(v, has_logs="true") == [runs.failure]
    assert set(ids(v, has_logs="false")) == everything - {runs.failure}
    items = v.get("/api/operations", params={"sort_duration": "desc"}).json()["items"]
    durations = [_duration(i) for i in items]
    assert durations == sorted(durations, reverse=True)
    items = v.get("/api/operations", params={"sort_duration": "asc"}).json()["items"]
    assert [_duration(i) for i in items] == sorted(durations)


def _duration(item) -> float:
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(item["end_time"]) - parse(item["start_time"])).total_seconds()


def test_pagination_edges(runs):
    v = runs.viewer
    pages = [v.get("/api/operations", params={"size": 3, "page": p}).json() for p in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [3, 1, 0]
    assert all(p["total"] == 4 and p["pages"] == math.ceil(4 / 3) for p in pages)
    assert [i["id"] for p in pages for i in p["items"]] == ids(v)


@pytest.mark.parametrize("params", [{"size": 0}, {"page": 0}, {"result": "bogus"}, {"finished": "maybe"},
                                    {"created_date": "2024-13-01"}, {"datastore": "abc"}, {"container": "x"},
                                    {"sort_created": "up"}, {"sort_duration": "sideways"}, {"offset": 5000},
                                    {"operation_type": "nope"}, {"id": "seven"}, {"has_logs": "perhaps"}])
def test_invalid_query_values_are_422(runs, params):
    r = runs.viewer.get("/api/operations", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "UNPROCESSABLE_ENTITY" and r.json()["details"]


def test_detail_and_containers(runs, system):
    detail = runs.viewer.get(f"/api/operations/{runs.monitor}").json()
    assert detail["configuration"]["targets"][0]["container"]["id"] == runs.asset["id"]
    # the datastore's path as registered, to a Viewer as to anyone: never where the server keeps it
    for run in (runs.monitor, runs.catalog):
        text = runs.viewer.get(f"/api/operations/{run}").text
        assert str(system.datastore_root) not in text and "resolved_path" not in text
    sync = runs.viewer.get(f"/api/operations/{runs.catalog}").json()["configuration"]
    assert sync["datastore"]["path"] == "ops" and detail["configuration"]["targets"][0]["datastore"]["path"] == "ops"
    assert detail["trigger"] == {"triggered_by": "admin", "created": detail["created"], "rerun_of": None}
    containers = runs.viewer.get(f"/api/operations/{runs.monitor}/containers").json()
    assert containers["total"] == 1
    (c,) = containers["items"]
    assert c["container"] == {"id": runs.asset["id"], "name": "a.csv", "container_type": "file"}
    assert c["result"] == "success" and c["records_processed"] == 2 and c["anomaly_count"] == 0
    compliance = runs.viewer.get(f"/api/operations/{runs.success}/containers").json()
    assert sum(i["records_processed"] for i in compliance["items"]) == 500


def test_errors(runs, system):
    a, v = runs.admin, runs.viewer
    assert a.get("/api/operations/abc").status_code == 400
    assert a.get("/api/operations/999999").status_code == 404
    assert a.get("/api/operations/999999/containers").status_code == 404
    assert a.put("/api/operations/abort/999999").status_code == 404
    assert a.put(f"/api/operations/abort/{runs.success}").status_code == 409
    assert a.put(f"/api/operations/run/{runs.success}").status_code == 409
    assert a.put(f"/api/operations/run/{runs.catalog}").status_code == 409
    assert a.put(f"/api/operations/run/{runs.failure}", params={"force_abort": "maybe"}).status_code == 422
    for method, path in (("PUT", f"/api/operations/abort/{runs.success}"),
                         ("PUT", f"/api/operations/run/{runs.failure}"),
                         ("PUT", f"/api/operations/rerun/{runs.success}"),
                         ("DELETE", f"/api/operations/{runs.success}")):
        r = v.request(method, path)
        assert r.status_code == 403 and r.json()["error"] == "FORBIDDEN", r.text
    with system.client(token="nope") as anonymous:
        assert anonymous.get("/api/operations").status_code == 401
    with system.client() as other_workspace:
        assert other_workspace.get(f"/api/operations/{runs.success}").status_code == 404


def test_abort_mid_run_then_resume_equals_an_uninterrupted_run(runs):
    a = runs.admin
    heavy = a.post("/api/policies", json={"name": "heavy", "rules": HEAVY_RULES}).json()
    up = upload(a, data.to_csv(data.transactions(20_000, seed=9)))
    mapping = confirm(a, up["upload_id"])

    scan_id, op = start_compliance(a, heavy["id"], up, mapping)
    assert a.put(f"/api/operations/run/{op}").status_code == 409  # still in flight, no force_abort
    deadline = time.monotonic() + 60
    while a.get(f"/api/operations/{op}").json()["status"]["anomalies_identified"] == 0:  # under way
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = a.put(f"/api/operations/abort/{op}")
    assert r.status_code == 200, r.text
    aborted = wait_result(a, op, ("aborted",))
    assert aborted["end_time"] is not None
    time.sleep(1)  # units that were mid-batch when the abort came have stopped by now
    containers = a.get(f"/api/operations/{op}/containers").json()["items"]
    done_before = {c["id"]: c for c in containers if c["result"] == "success"}
    assert any(c["result"] == "aborted" for c in containers), "the abort came too late to catch the run in flight"
    kept = a.get(f"/api/scan/{scan_id}/violations", params={"size": 1}).json()["total"]
    assert kept > 0  # what was found before the abort is kept

    r = a.put(f"/api/operations/run/{op}")
    assert r.status_code == 200 and r.json()["result"] == "running", r.text
    assert r.json()["end_time"] is None and r.json()["start_time"] > aborted["start_time"]  # dispatched anew
    resumed = wait_result(a, op, ("success", "failure"))
    baseline_scan, baseline = start_compliance(a, heavy["id"], up, mapping)  # the same scan, uninterrupted
    expected = wait_result(a, baseline)
    assert resumed["result"] == expected["result"] == "success"
    assert resumed["status"]["anomalies_identified"] == expected["status"]["anomalies_identified"] == 20_000 * 15
    assert resumed["status"]["records_processed"] == expected["status"]["records_processed"] == 20_000
    after = {c["id"]: c for c in a.get(f"/api/operations/{op}/containers").json()["items"]}
    assert all(c["result"] == "success" for c in after.values())
    for cid, before in done_before.items():  # completed containers were not read again
        assert after[cid]["start_time"] == before["start_time"] and after[cid]["end_time"] == before["end_time"]
    scan = a.get(f"/api/scan/{scan_id}").json()
    assert scan["violation_count"] == a.get(f"/api/scan/{baseline_scan}").json()["violation_count"]


def test_rerun_then_delete(runs):
    a = runs.admin
    r = a.put(f"/api/operations/rerun/{runs.success}")
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["id"] != runs.success and new["result"] in ("queued", "running") and new["end_time"] is None
    done = wait_result(a, new["id"])
    original = a.get(f"/api/operations/{runs.success}").json()
    assert done["trigger"]["rerun_of"] == runs.success
    assert done["configuration"] == original["configuration"]
    assert done["status"]["anomalies_identified"] == original["status"]["anomalies_identified"]

    before = len(all_violations(a, runs.success_scan))
    assert a.delete(f"/api/operations/{runs.success}").status_code == 204
    assert a.get(f"/api/operations/{runs.success}").status_code == 404
    assert runs.success not in ids(a)
    assert len(all_violations(a, runs.success_scan)) == before > 0  # the run's findings stay
    assert a.delete(f"/api/operations/{runs.success}").status_code == 404
