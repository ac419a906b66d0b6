"""Seed 000 end to end: datastores, assets, monitors, a workspace monitor scan followed live."""
from __future__ import annotations

import sqlite3
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from tests.e2e.monitor_fixtures import in_workspace, sync

BIG_ROWS = 1_500_000


def write_lake(root):
    lake = root / "lake"
    lake.mkdir()
    (lake / "orders.csv").write_text(
        "order_id,email,amount\n1,a@x.io,10\n2,,20\n3,c@x.io,30\n4,d@x.io,40\n")
    (lake / "events.jsonl").write_text('{"kind": "click", "n": 1}\n{"kind": "view", "n": 2}\n')
    (lake / "broken.csv").write_text('a,b\n1,2\n3,4,5,6\n"unclosed\n')
    # big enough that its monitors are still running when the dashboard is polled
    ids = pa.array(np.arange(BIG_ROWS))
    big = pa.table({"id": ids, "v": pc.remainder(ids, 97)})
    pacsv.write_csv(big, str(lake / "big.csv"))
    db = sqlite3.connect(root / "shop.db")
    db.executescript("""
        CREATE TABLE customers (id INTEGER, country TEXT);
        INSERT INTO customers VALUES (1, 'US'), (2, 'DE'), (3, 'US');
        CREATE TABLE products (sku TEXT, price REAL);
        INSERT INTO products VALUES ('a', 1.5);
        CREATE VIEW us_customers AS SELECT * FROM customers WHERE country = 'US';
    """)
    db.commit()
    db.close()


MONITORS = {
    "orders.csv": [
        {"name": "Record Count", "type": "record_count", "params": {"min": 1}},
        {"name": "Email nulls", "type": "null_rate", "params": {"column": "email", "max": 0.0}, "severity": "high"},
        {"name": "Amount range", "type": "value_range", "params": {"column": "amount", "min": 0, "max": 1000}},
        {"name": "Unique orders", "type": "uniqueness", "params": {"columns": ["order_id"]}},
    ],
    "events.jsonl": [
        {"name": "Has rows", "type": "record_count", "params": {"min": 1}},
        {"name": "Missing column", "type": "pattern", "params": {"column": "missing_col", "regex": "x+"}},
    ],
    "broken.csv": [{"name": "Has rows", "type": "record_count", "params": {"min": 1}}],
    "big.csv": [{"name": f"Unique {i}", "type": "uniqueness", "params": {"columns": ["id", "v"]}} for i in range(3)],
    "customers": [{"name": "Countries", "type": "allowed_values",
                   "params": {"column": "country", "values": ["US", "DE"]}}],
    "products": [{"name": "Disabled", "type": "record_count", "params": {"min": 5}, "enabled": False}],
}


@pytest.fixture(scope="module")
def workspace(system):
    write_lake(system.datastore_root)
    with in_workspace(system, "Data team") as ws:
        lake = ws.admin.post("/api/datastores", json={"name": "Lake", "type": "local_dir", "path": "lake"})
        shop = ws.admin.post("/api/datastores", json={"name": "Shop", "type": "sqlite",
                                                      "path": str(system.datastore_root / "shop.db")})
        assert lake.status_code == 201 and shop.status_code == 201, (lake.text, shop.text)
        ws.datastores = {"lake": lake.json(), "shop": shop.json()}
        ws.assets = {a["name"]: a for store in ws.datastores.values() for a in sync(ws.admin, store["id"])}
        for name, monitors in MONITORS.items():
            for m in monitors:
                r = ws.member.post(f"/api/assets/{ws.assets[name]['id']}/monitors", json=m)
                assert r.status_code == 201, r.text
        yield ws


def test_sync_finds_every_asset_with_columns_and_row_counts(workspace):
    assets = workspace.assets
    assert sorted(assets) == ["big.csv", "broken.csv", "customers", "events.jsonl", "orders.csv", "products"]
    assert assets["orders.csv"]["row_count"] == 4
    assert [c["name"] for c in assets["orders.csv"]["columns"]] == ["order_id", "email", "amount"]
    assert assets["customers"]["row_count"] == 3 and assets["customers"]["container_type"] == "table"
    assert assets["big.csv"]["row_count"] == BIG_ROWS
    assert assets["broken.csv"]["row_count"] is None  # unreadable: listed, not profiled
    assert all(isinstance(a["id"], int) for a in assets.values())


def test_datastore_paths_are_confined_to_the_root(workspace):
    for path in ("../outside", "/etc", "lake/../../x"):
        r = workspace.admin.post("/api/datastores", json={"name": "x", "type": "local_dir", "path": path})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "VALIDATION_ERROR" and r.json()["details"][0]["path"] == ["path"]


def test_monitor_scan_followed_live_then_final(workspace):
    assert workspace.viewer.post("/api/scan/run").status_code == 403
    r = workspace.member.post("/api/scan/run")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["data"]["status"] == "running" and set(body["data"]) == {"executionId", "status"}
    execution = body["data"]["executionId"]
    assert workspace.viewer.get(f"/api/scan/{execution}").status_code == 200  # readable at once, any kind

    seen_running = False
    deadline = time.monotonic() + 120
    while True:
        status = workspace.member.get(f"/api/scan/status/{execution}").json()["data"]
        board = {a["assetName"]: a for a in workspace.viewer.get("/api/assets/scan-status").json()["data"]}
        for asset in board.values():
            run = asset["currentRun"]
            if run is not None:
                assert asset["status"] == "running" and run["status"] == "running"
                p = run["progress"]
                assert p["total"] == p["completed"] + p["running"] + p["failed"] + p["pending"]
                assert p["total"] == len(run["monitors"])
                assert p["running"] <= 1  # monitors of one asset run one after another
                if asset["assetName"] == "big.csv" and p["completed"] < p["total"]:
                    seen_running = True
        if status["status"] != "running":
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.02)
    assert seen_running, "never saw big.csv in flight"
    assert status["status"] == "finished" and status["finishedAt"] and status["startedAt"]

    board = {a["assetName"]: a for a in workspace.viewer.get("/api/assets/scan-status").json()["data"]}
    assert sorted(board) == sorted(MONITORS)
    expect = {"orders.csv": ("completed", 4, 0), "events.jsonl": ("partial_failure", 1, 1),
              "broken.csv": ("failed", 0, 1), "big.csv": ("completed", 3, 0), "customers": ("completed", 1, 0)}
    for name, (state, completed, failed) in expect.items():
        asset = board[name]
        assert asset["status"] == state, asset
        assert asset["currentRun"] is None
        last = asset["lastRun"]
        assert last["status"] == state and last["finishedAt"] == asset["lastCompletedAt"]
        assert last["progress"] == {"total": completed + failed, "completed": completed, "running": 0,
                                    "failed": failed, "pending": 0}
        assert [m["monitorName"] for m in last["monitors"]] == [m["name"] for m in MONITORS[name]]
        assert all(isinstance(m["durationMs"], int) for m in last["monitors"])
    errors = {m["monitorName"]: m["error"] for m in board["events.jsonl"]["lastRun"]["monitors"]}
    assert errors["Has rows"] is None and "missing_col" in errors["Missing column"]
    assert all(m["error"] for m in board["broken.csv"]["lastRun"]["monitors"])
    assert board["products"] == {"assetId": str(workspace.assets["products"]["id"]), "assetName": "products",
                                 "status": "idle", "lastCompletedAt": None, "currentRun": None, "lastRun": None}

    # the run's containers: events.jsonl's 2 rows were read, though one of its monitors failed
    run = max(workspace.viewer.get("/api/operations", params={"operation_type": "scan"}).json()["items"],
              key=lambda r: r["id"])
    containers = {c["container"]["name"]: c for c in
                  workspace.viewer.get(f"/api/operations/{run['id']}/containers").json()["items"]}
    assert (containers["events.jsonl"]["result"], containers["events.jsonl"]["records_processed"]) == ("failure", 2)
    assert containers["customers"]["records_processed"] == 3 and containers["broken.csv"]["records_processed"] == 0

    anomalies = workspace.viewer.get(f"/api/scan/{execution}/violations").json()
    assert anomalies["total"] == 1
    (anomaly,) = anomalies["items"]
    assert anomaly["rule_name"] == "Email nulls" and anomaly["severity"] == "high"
    assert anomaly["observed"]["sample_rows"] == [2] and anomaly["observed"]["nulls"] == 1  # where to look
    assert anomaly["record_key"] == "orders.csv"


def test_another_workspace_sees_none_of_it(workspace, api):
    asset_id = workspace.assets["orders.csv"]["id"]
    names = {a["name"] for a in api.get("/api/assets").json()["items"]}
    assert not names & set(MONITORS)
    assert api.get(f"/api/assets/{asset_id}/monitors").status_code == 404
    assert api.get(f"/api/datastores/{workspace.datastores['lake']['id']}").status_code == 404
    board = api.get("/api/assets/scan-status").json()["data"]
    assert not {a["assetName"] for a in board} & set(MONITORS)
