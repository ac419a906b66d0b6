"""The ledger is the record of truth: replay rebuilds the same rows; a restart loses nothing.

Named to run after the monitor and operations modules, so the replay covers their runs too
(syncs, monitor scans, aborts, resumes, reruns, deletes)."""
import sqlite3
import time

from projections.schema import READ_MODEL_TABLES
from tests.e2e import data
from tests.e2e.helpers import confirm, policy, scan_once, upload, wait_settled
from tests.system import System


def rows(path, table):
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def test_replay_arrives_at_exactly_the_live_rows(api, system, tmp_path):
    pol = policy(api, name="replayed")
    for seed in (11, 12):
        scan_once(api, data.transactions(600, seed=seed), pol["id"])
    target = tmp_path / "replay.db"
    out = system.cli("replay", "--into", f"sqlite:///{target}")
    assert "replayed" in out.stdout
    for table in READ_MODEL_TABLES:
        if table == "projector_offsets":
            continue
        assert rows(target, table) == rows(system.db_path, table), table


def test_restart_keeps_every_scan(kafka, tmp_path):
    system = System(kafka, tmp_path / "restart").start()
    try:
        with system.client() as api:
            pol = policy(api, rules=data.RULES[:3])
            scan_id, scan = scan_once(api, data.transactions(300, seed=21), pol["id"])
        system.stop()
        system.start()
        with system.client() as api:
            assert wait_settled(api, scan_id) == scan
    finally:
        system.stop()


HEAVY = [{"id": f"all{i}", "name": f"Every record {i}", "type": "threshold", "severity": "low",
          "params": {"field": "amount", "op": "gt", "value": -1}} for i in range(8)]


def test_a_killed_worker_and_projector_lose_nothing_and_count_nothing_twice(kafka, tmp_path):
    """SIGKILL both mid-scan and start them again: at-least-once redelivery and replayed
    batches must end in exactly the uninterrupted answer."""
    rows = data.transactions(20_000, seed=31)
    want = sum(len(v) for v in data.expected(rows).values()) + len(HEAVY) * len(rows)
    system = System(kafka, tmp_path / "crash", SCANLEDGER_UNIT_RECORDS="2000").start()
    try:
        with system.client() as api:
            pol = policy(api, rules=[*data.RULES, *HEAVY], name="crash")
            up = upload(api, data.to_csv(rows))
            mapping = confirm(api, up["upload_id"])
            r = api.post("/api/scan/run", headers={"Prefer": "respond-async"}, json={
                "policy_id": pol["id"], "upload_id": up["upload_id"], "mapping_id": mapping["mapping_id"]})
            scan_id = r.json()["scan_id"]
            deadline = time.monotonic() + 60
            while api.get(f"/api/scan/{scan_id}").json()["rules_processed"] == 0:  # under way
                assert time.monotonic() < deadline
                time.sleep(0.02)
            system.kill("worker")
            time.sleep(0.3)
            system.kill("projector")
            system.spawn("worker")
            system.spawn("projector")
            scan = wait_settled(api, scan_id, timeout_s=240)
            assert scan["status"] == "completed"
            assert scan["violation_count"] == want
            assert scan["record_count"] == len(rows)
            assert api.get(f"/api/scan/{scan_id}/violations", params={"size": 1}).json()["total"] == want
    finally:
        system.stop()
