"""SIGKILL the worker mid-way through a sensitive-data scan, then start a new one: the scan ends
with exactly the findings of an unfaulted scan of the same files (finding ids are a function of
connector, file, location, detector and offset), each counted once."""
from __future__ import annotations

from harness.faults import Procs
from tests.e2e.helpers import ok, until
from tests.e2e.monitor_fixtures import in_workspace

FILES = 1200


def scan(client, connector: str) -> str:
    return ok(client.post("/api/v1/scans/parallel", json={"connectors": [connector], "type": "full",
                                                         "options": {"max_workers": 3}}), 201)["scan_id"]


def settled(client, scan_id: str) -> dict:
    return until(lambda: (d := ok(client.get(f"/api/v1/scans/{scan_id}")))["status"] not in ("queued", "running")
                 and d)


def findings(client, scan_id: str) -> list[str]:
    ids, cursor = [], None
    while True:
        r = client.get(f"/api/v1/scans/{scan_id}/findings", params={"limit": 1000, **({"cursor": cursor} if cursor
                                                                                       else {})})
        ids += [f["finding_id"] for f in ok(r)]
        if (cursor := r.json()["pagination"]["next_cursor"]) is None:
            return ids


def test_worker_sigkilled_mid_sensitive_scan_ends_with_the_unfaulted_findings(kafka, tmp_path):
    procs = Procs(kafka, tmp_path / "sensitive-kill")
    lake = procs.datastore_root / "lake"
    lake.mkdir()
    for i in range(FILES):
        (lake / f"n_{i:05d}.txt").write_text(f"row {i}: mail kim.lee{i}@example.com\n")
    procs.start()
    try:
        with in_workspace(procs, "Kill") as ws:
            client = ws.admin
            connector = ok(client.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                    "config": {"path": "lake"}}), 201)["id"]
            faulted = scan(client, connector)
            until(lambda: ok(client.get(f"/api/v1/scans/{faulted}"))["progress"]["files_processed"] > 0)
            procs.kill("worker")
            procs.spawn("worker")
            done = settled(client, faulted)
            clean = settled(client, scan(client, connector))
            assert done["status"] == clean["status"] == "completed", (done, clean)
            assert done["coverage"] == clean["coverage"]
            assert done["progress"]["findings_count"] == clean["progress"]["findings_count"] == FILES
            faulted_ids, clean_ids = findings(client, faulted), findings(client, clean["scan_id"])
            assert len(faulted_ids) == len(set(faulted_ids)) == FILES
            assert sorted(faulted_ids) == sorted(clean_ids)
    finally:
        procs.stop()
