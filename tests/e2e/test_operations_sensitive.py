"""Seed 003's Runs API over seed 004's sensitive-data scans, on the real system: a sensitive scan is
a `scan` run of the Activity list with its files and findings as counts and its chunks as
containers; abort then resume ends with exactly the uninterrupted scan's findings and coverage;
rerun is a new sensitive scan; delete hides the run and keeps the scan and its findings. Waits
poll until the system answers: no time limits.

Named to run after test_operations_resume and before test_replay_restart, so the replay covers
these runs too."""
from __future__ import annotations

import time

import pytest

from tests.e2e.monitor_fixtures import in_workspace
from tests.e2e.test_sensitive_scans import error, ok, settled, until

NOTES = 12
BULK = 4500
CHUNKS = 6  # of 750 files: after the first two, enough left to abort one while it runs
FINISHED = ("success", "failure", "aborted")


@pytest.fixture(scope="module")
def ws(system):
    root = system.datastore_root / "sensitive-runs"
    (root / "notes").mkdir(parents=True)
    for i in range(NOTES):
        (root / "notes" / f"note_{i:02d}.txt").write_text(f"call back jane.doe{i}@example.com\n")
    (root / "bulk").mkdir()
    for i in range(BULK):
        (root / "bulk" / f"row_{i:05d}.txt").write_text(f"ticket {i} for pat.lee{i}@example.com\n" + "filler\n" * 200)
    with in_workspace(system, "Sensitive runs") as ws, in_workspace(system, "Sensitive runs B") as other:
        ws.other = other
        ws.notes = connector(ws.admin, "Notes", "sensitive-runs/notes")
        ws.bulk = connector(ws.admin, "Bulk", "sensitive-runs/bulk")
        yield ws


def connector(client, name: str, path: str) -> str:
    return ok(client.post("/api/v1/connectors", json={"name": name, "type": "local_dir", "config": {"path": path}}),
              201)["id"]


def start(client, connector_id: str, **options) -> str:
    body = {"connectors": [connector_id], "type": "full", "options": {"max_workers": 3, **options}}
    return ok(client.post("/api/v1/scans/parallel", json=body), 201)["scan_id"]


def run_of(client, scan_id: str) -> int:
    """The run id of a scan: the Activity list's item whose detail names it."""
    def found():
        for item in client.get("/api/operations", params={"size": 1000}).json()["items"]:
            if client.get(f"/api/operations/{item['id']}").json().get("scan_id") == scan_id:
                return item["id"]
        return None
    return until(found)


def ids(client, **params) -> list[int]:
    r = client.get("/api/operations", params={"size": 1000, **params})
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["items"]]


def operation(client, op: int) -> dict:
    r = client.get(f"/api/operations/{op}")
    assert r.status_code == 200, r.text
    return r.json()


def finished(client, op: int, results=FINISHED) -> dict:
    return until(lambda: (d := operation(client, op))["result"] in results and d)


def finding_ids(client, scan_id: str) -> set[str]:
    out, cursor = [], None
    while True:
        r = client.get(f"/api/v1/scans/{scan_id}/findings", params={"limit": 1000, **({"cursor": cursor} if cursor
                                                                                     else {})})
        out += [f["finding_id"] for f in ok(r)]
        cursor = r.json()["pagination"]["next_cursor"]
        if cursor is None:
            assert len(out) == len(set(out))
            return set(out)


@pytest.fixture(scope="module")
def notes(ws):
    """A completed sensitive scan of the notes (one email each) and its run id."""
    scan_id = start(ws.member, ws.notes)
    return scan_id, settled(ws.admin, scan_id), run_of(ws.admin, scan_id)


def test_a_sensitive_scan_is_a_scan_run_with_its_files_and_findings(ws, notes, system):
    scan_id, scan, op = notes
    v = ws.viewer
    assert scan["status"] == "completed"
    assert op in ids(v) and op in ids(v, operation_type="scan") and op not in ids(v, operation_type="catalog")
    assert op in ids(v, result="success", finished="true")
    (item,) = [i for i in v.get("/api/operations", params={"size": 1000}).json()["items"] if i["id"] == op]
    assert item["type"] == "scan" and item["result"] == "success" and item["datastore"] is None
    assert item["triggered_by"] == "member@example.com" and item["end_time"] is not None
    assert item["status"] == {"total_containers": scan["workers"]["total"],
                              "containers_analyzed": scan["workers"]["completed"] + scan["workers"]["failed"],
                              "partitions_scanned": 3, "records_processed": scan["coverage"]["total_scanned"],
                              "anomalies_identified": scan["progress"]["findings_count"]}
    assert (item["status"]["total_containers"], item["status"]["records_processed"],
            item["status"]["anomalies_identified"]) == (3, NOTES, NOTES)

    r = v.get(f"/api/operations/{op}")
    detail = r.json()
    assert detail["kind"] == "sensitive" and detail["scan_id"] == scan_id and detail["type"] == "scan"
    assert detail["configuration"] == {
        "type": "full", "connectors": [{"id": ws.notes, "name": "Notes", "type": "local_dir",
                                        "config": {"path": "sensitive-runs/notes"}}],
        "options": scan["options"], "baseline_scans": {}}
    assert str(system.datastore_root) not in r.text  # the server's resolved path is never shown
    assert detail["summary"] == {"progress": scan["progress"], "coverage": scan["coverage"]}
    assert detail["trigger"] == {"triggered_by": "member@example.com", "created": scan["created_at"],
                                 "rerun_of": None}

    containers = v.get(f"/api/operations/{op}/containers").json()
    workers = ok(v.get(f"/api/v1/scans/{scan_id}/workers"))
    assert containers["total"] == len(workers) == 3
    for i, (c, w) in enumerate(zip(containers["items"], workers, strict=True)):
        assert c["id"] == i + 1 and c["container"] == {"id": None, "name": f"chunk {i}", "container_type": "chunk"}
        assert c["records_processed"] == w["progress"]["files_processed"] == w["chunk"]["file_count"]
        assert c["anomaly_count"] == w["progress"]["findings_count"] and c["result"] == "success"
        assert (c["start_time"], c["end_time"]) == (w["started_at"], w["completed_at"])
    assert sum(c["anomaly_count"] for c in containers["items"]) == NOTES


def test_abort_then_resume_ends_with_the_uninterrupted_scans_findings_and_coverage(ws):
    a = ws.admin
    baseline_scan = start(a, ws.bulk, max_workers=CHUNKS)  # the same scan, uninterrupted
    baseline = settled(a, baseline_scan)
    assert baseline["status"] == "completed" and baseline["progress"]["findings_count"] == BULK

    scan_id = start(a, ws.bulk, max_workers=CHUNKS)
    op = run_of(a, scan_id)
    assert error(a.put(f"/api/operations/run/{op}"), 409, "CONFLICT")["message"]  # in flight, no force_abort
    # two chunks run at once (streams.app.EVALUATORS): once one is done, four are still to run, so the abort
    # lands while one is under way however long the projector takes to show the first (PostgreSQL's took 0.8 s)
    until(lambda: any(w["status"] == "completed" for w in ok(a.get(f"/api/v1/scans/{scan_id}/workers"))))
    r = a.put(f"/api/operations/abort/{op}")
    assert r.status_code == 200, r.text
    aborted = finished(a, op, ("aborted",))
    assert aborted["end_time"] is not None
    assert ok(a.get(f"/api/v1/scans/{scan_id}"))["status"] == "cancelled"

    def quiet():
        """Its workers stop between groups of files once they read the abort: then nothing changes."""
        before = a.get(f"/api/operations/{op}/containers").json()
        time.sleep(1)
        after = a.get(f"/api/operations/{op}/containers").json()
        return before == after and after
    containers = until(quiet)["items"]
    done_before = {c["id"]: c for c in containers if c["result"] == "success"}
    assert done_before and any(c["result"] == "aborted" for c in containers), containers  # caught in flight
    kept = ok(a.get(f"/api/v1/scans/{scan_id}"))
    assert 0 < kept["progress"]["findings_count"] < BULK  # what was found before the abort is kept
    item = operation(a, op)
    assert item["status"]["records_processed"] == kept["coverage"]["total_scanned"]
    assert item["status"]["anomalies_identified"] == kept["progress"]["findings_count"]

    r = a.put(f"/api/operations/run/{op}")
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "running" and r.json()["end_time"] is None
    assert r.json()["start_time"] > aborted["start_time"]  # dispatched anew
    resumed = finished(a, op, ("success", "failure"))
    done = settled(a, scan_id)
    assert resumed["result"] == "success" and done["status"] == "completed"
    assert done["coverage"] == baseline["coverage"]
    assert {k: done["progress"][k] for k in ("files_total", "files_processed", "files_failed", "findings_count")} == {
        k: baseline["progress"][k] for k in ("files_total", "files_processed", "files_failed", "findings_count")}
    assert finding_ids(a, scan_id) == finding_ids(a, baseline_scan)
    expected = operation(a, run_of(a, baseline_scan))
    assert resumed["status"] == expected["status"]
    after = {c["id"]: c for c in a.get(f"/api/operations/{op}/containers").json()["items"]}
    assert all(c["result"] == "success" for c in after.values())
    for cid, before in done_before.items():  # the chunks completed before the abort were not read again
        assert (after[cid]["start_time"], after[cid]["end_time"]) == (before["start_time"], before["end_time"])
    assert error(a.put(f"/api/operations/run/{op}"), 409, "CONFLICT")  # completed: nothing to resume


def test_rerun_is_a_new_sensitive_scan_with_the_same_configuration(ws, notes):
    scan_id, scan, op = notes
    a = ws.admin
    r = a.put(f"/api/operations/rerun/{op}")
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["id"] != op and new["type"] == "scan" and new["result"] in ("queued", "running")
    assert new["end_time"] is None
    detail = finished(a, new["id"])
    assert detail["kind"] == "sensitive" and detail["trigger"]["rerun_of"] == op
    assert detail["trigger"]["triggered_by"] == "admin"
    new_scan = detail["scan_id"]
    assert new_scan.startswith("scan-") and new_scan != scan_id
    assert detail["configuration"] == operation(a, op)["configuration"]
    again = settled(a, new_scan)  # a sensitive scan of its own, read as seed 004 reads any
    assert again["status"] == "completed" and again["progress"]["findings_count"] == scan["progress"]["findings_count"]
    assert again["coverage"] == scan["coverage"] and again["created_at"] > scan["created_at"]
    assert finding_ids(a, new_scan) == finding_ids(a, scan_id)
    assert new_scan in {s["scan_id"] for s in ok(a.get("/api/v1/scans", params={"connector": ws.notes}))}
    assert detail["status"]["anomalies_identified"] == NOTES


def test_a_byoc_scan_aborts_and_reruns_into_a_scan_that_waits_for_workers(ws):
    a = ws.admin
    scan_id = start(a, ws.notes, execution="byoc")
    op = run_of(a, scan_id)
    until(lambda: operation(a, op)["result"] == "running")  # its chunks offered: no worker will come
    assert error(a.delete(f"/api/operations/{op}"), 409, "CONFLICT")  # in flight
    assert a.put(f"/api/operations/abort/{op}").status_code == 200
    assert finished(a, op)["result"] == "aborted"
    assert ok(a.get(f"/api/v1/scans/{scan_id}"))["status"] == "cancelled"
    assert error(a.put(f"/api/operations/abort/{op}"), 409, "CONFLICT")  # already finished

    r = a.put(f"/api/operations/rerun/{op}")
    assert r.status_code == 200, r.text
    new = operation(a, r.json()["id"])
    rerun = ok(a.get(f"/api/v1/scans/{new['scan_id']}"))
    assert rerun["options"]["execution"] == "byoc" and rerun["status"] in ("queued", "running")
    assert a.put(f"/api/operations/abort/{new['id']}").status_code == 200
    assert finished(a, new["id"])["result"] == "aborted"
    assert a.delete(f"/api/operations/{new['id']}").status_code == 204


def test_delete_hides_the_run_and_keeps_the_scan_and_its_findings(ws):
    a = ws.admin
    scan_id = start(a, ws.notes)
    done = settled(a, scan_id)
    op = run_of(a, scan_id)
    findings = finding_ids(a, scan_id)
    assert len(findings) == NOTES

    assert a.delete(f"/api/operations/{op}").status_code == 204
    assert op not in ids(a) and op not in ids(a, operation_type="scan")
    for path in (f"/api/operations/{op}", f"/api/operations/{op}/containers"):
        assert error(a.get(path), 404, "NOT_FOUND")
    for method, path in (("PUT", f"/api/operations/abort/{op}"), ("PUT", f"/api/operations/run/{op}"),
                         ("PUT", f"/api/operations/rerun/{op}"), ("DELETE", f"/api/operations/{op}")):
        assert error(a.request(method, path), 404, "NOT_FOUND")
    # the scan itself is the run's artifact: seed 004 still reads it, its workers and every finding
    assert ok(a.get(f"/api/v1/scans/{scan_id}")) == done
    assert len(ok(a.get(f"/api/v1/scans/{scan_id}/workers"))) == 3
    assert finding_ids(a, scan_id) == findings
    assert scan_id in {s["scan_id"] for s in ok(a.get("/api/v1/scans", params={"limit": 100}))}


def test_roles_and_workspaces(ws, notes):
    *_, op = notes
    for method, path in (("PUT", f"/api/operations/abort/{op}"), ("PUT", f"/api/operations/run/{op}"),
                         ("PUT", f"/api/operations/rerun/{op}"), ("DELETE", f"/api/operations/{op}")):
        assert error(ws.viewer.request(method, path), 403, "FORBIDDEN")
        assert error(ws.other.admin.request(method, path), 404, "NOT_FOUND")
    for path in (f"/api/operations/{op}", f"/api/operations/{op}/containers"):
        assert ws.viewer.get(path).status_code == 200
        assert error(ws.other.admin.get(path), 404, "NOT_FOUND")
    assert op not in ids(ws.other.admin) and ids(ws.other.admin, operation_type="scan") == []
    assert operation(ws.admin, op)["result"] == "success"  # none of the refused actions did anything
