"""Seed 003's Activity list while no worker takes runs up (its worker stopped): a run accepted on the ledger
and not yet projected (rm_scan_requests) is listed, counted, filtered, sorted and paged as queued, as
GET /api/operations/{id} answers it; once the worker resumes, each run shows exactly once as it runs
and completes."""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

import pytest

from harness import data
from harness.system import System
from tests.e2e.helpers import confirm, policy, until, upload
from tests.e2e.monitor_fixtures import in_workspace

FINISHED = {"success", "failure", "aborted"}
ASYNC = {"Prefer": "respond-async"}


def listed(api, **params) -> dict:
    r = api.get("/api/operations", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def ids(api, **params) -> list[int]:
    return [i["id"] for i in listed(api, size=1000, **params)["items"]]


def is_pending(api, operation_id: int) -> bool:
    """Accepted, not projected: GET /api/operations/{id} answers from the request (no scan_id yet)."""
    r = api.get(f"/api/operations/{operation_id}")
    assert r.status_code == 200, r.text
    return "scan_id" not in r.json()


@pytest.fixture(scope="module")
def system(kafka, tmp_path_factory):
    """A system of its own: its worker is stopped for a while."""
    root = tmp_path_factory.mktemp("queued-root")
    (root / "lake").mkdir()
    (root / "lake" / "a.csv").write_text("x\n1\n2\n")
    system = System(kafka, tmp_path_factory.mktemp("queued-system"), SCANLEDGER_DATASTORE_ROOT=str(root)).start()
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def ws(system):
    """A workspace with two finished runs (a sync of a datastore and a compliance scan) and what to start more."""
    with in_workspace(system, "Queued") as ws:
        api = ws.admin
        ws.store = api.post("/api/datastores", json={"name": "Lake", "type": "local_dir", "path": "lake"}).json()
        r = api.post(f"/api/datastores/{ws.store['id']}/sync")
        assert r.status_code == 202, r.text
        up = upload(api, data.to_csv(data.transactions(50, seed=3)))
        mapping = confirm(api, up["upload_id"])
        ws.scan = {"policy_id": policy(api)["id"], "upload_id": up["upload_id"], "mapping_id": mapping["mapping_id"]}
        assert api.post("/api/scan/run", headers=ASYNC, json=ws.scan).status_code == 200
        until(lambda: len(ids(api, finished="true")) == 2)
        ws.finished = set(ids(api))
        (ws.asset,) = api.get("/api/assets", params={"datastore": ws.store["id"]}).json()["items"]
        yield ws


@contextmanager
def stopped(process):
    """The process stopped (SIGSTOP), and continued (SIGCONT) whatever happens."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def test_runs_no_worker_has_taken_up_are_listed_as_queued_then_each_once_as_they_run(system, ws):
    api = ws.admin
    with stopped(system.processes["worker"]):
        assert api.post("/api/scan/run", headers=ASYNC, json=ws.scan).status_code == 200
        r = api.post(f"/api/datastores/{ws.store['id']}/sync")
        assert r.status_code == 202, r.text
        ws.sync = r.json()["operation_id"]
        ws.compliance = ws.sync - 1  # run ids are one sequence, and this system's only client is this test
        ws.pending = {ws.compliance, ws.sync}
        until(lambda: all(api.get(f"/api/operations/{i}").status_code == 200 for i in ws.pending))
        assert api.get(f"/api/operations/{ws.compliance}").json()["type"] == "scan"
        assert all(is_pending(api, i) for i in ws.pending)  # the worker has not taken them up
        listed_as_queued(api, ws)
        filtered(api, ws)
        sorted_by_duration(api, ws)
        paged(api, ws)
        assert all(is_pending(api, i) for i in ws.pending)  # still: every check above saw them pending
    polls = poll_until_finished(api, ws)
    for operation_id in ws.pending:
        assert polls[-1][operation_id]["result"] == "success" and polls[-1][operation_id]["start_time"] is not None
    assert ids(api, result="queued") == [] and set(ids(api, finished="true")) == ws.finished | ws.pending


def poll_until_finished(api, ws) -> list[dict]:
    """The list, read again and again from the worker's resumption until both runs have finished: each
    run in it exactly once every time."""
    polls: list[dict] = []
    while not polls or not all(polls[-1][i]["result"] in FINISHED for i in ws.pending):
        body = listed(api, size=1000)
        item_ids = [i["id"] for i in body["items"]]
        assert sorted(item_ids) == sorted(ws.finished | ws.pending) and body["total"] == 4, body
        polls.append({i["id"]: i for i in body["items"]})
        time.sleep(0.1)
    return polls


def listed_as_queued(api, ws) -> None:
    body = listed(api)
    assert body["total"] == 4 and len(body["items"]) == 4 and body["pages"] == 1
    items = {i["id"]: i for i in body["items"]}
    assert set(items) == ws.finished | ws.pending
    for operation_id in ws.pending:
        item = items[operation_id]
        assert item["result"] == "queued" and item["start_time"] is None and item["end_time"] is None, item
        assert item["message"] is None and item["triggered_by"] == "admin"
        assert item == api.get(f"/api/operations/{operation_id}").json()  # as its own page answers it
    assert items[ws.compliance]["type"] == "scan" and items[ws.compliance]["datastore"] is None
    assert items[ws.sync]["type"] == "catalog"
    assert items[ws.sync]["datastore"] == {"id": ws.store["id"], "name": "Lake"}
    assert ids(api) == sorted(items, reverse=True)  # newest first, pending or not


def filtered(api, ws) -> None:
    assert sorted(ids(api, result="queued")) == sorted(ws.pending)
    assert listed(api, result="queued")["total"] == 2
    assert set(ids(api, result=["queued", "success"])) == ws.pending | ws.finished
    assert set(ids(api, finished="false")) == ws.pending
    assert set(ids(api, finished="true")) == ws.finished
    assert set(ids(api, result="success")) == ws.finished
    assert ids(api, result="running") == []
    assert ids(api, id=ws.sync) == [ws.sync] and ids(api, id=ws.compliance) == [ws.compliance]
    assert listed(api, id=ws.sync)["total"] == 1
    catalogs = set(ids(api, operation_type="catalog"))
    assert ws.sync in catalogs and ws.compliance not in catalogs and len(catalogs) == 2
    assert ws.compliance in ids(api, operation_type="scan")
    # the sync's datastore and its containers are its request's
    assert ws.sync in ids(api, datastore=ws.store["id"]) and ws.compliance not in ids(api, datastore=ws.store["id"])
    assert ws.sync in ids(api, container=ws.asset["id"]) and ws.compliance not in ids(api, container=ws.asset["id"])
    assert set(ids(api, has_logs="false")) == ws.pending | ws.finished and ids(api, has_logs="true") == []
    today = api.get(f"/api/operations/{ws.sync}").json()["created"][:10]
    assert ws.pending <= set(ids(api, created_date=today))
    assert not ws.pending & set(ids(api, start_date=today)) and not ws.pending & set(ids(api, end_date=today))


def sorted_by_duration(api, ws) -> None:
    for direction in ("asc", "desc"):
        order = ids(api, sort_duration=direction)
        assert set(order[2:]) == ws.pending, (direction, order)  # no duration yet: last, either way
    created = ids(api, sort_created="asc")
    assert set(created[2:]) == ws.pending  # requested after the finished runs


def paged(api, ws) -> None:
    """Pages over the projected and the pending rows: every run once, in the list's order."""
    for params in ({}, {"sort_duration": "asc"}, {"sort_created": "desc"}):
        everything = ids(api, **params)
        for size in (1, 3):
            body = listed(api, size=size, **params)
            assert body["total"] == 4 and body["pages"] == -(-4 // size)
            walked = [i["id"] for page in range(1, body["pages"] + 1)
                      for i in listed(api, size=size, page=page, **params)["items"]]
            assert walked == everything, (params, size, walked)
    queued = listed(api, size=1, page=2, result="queued")
    assert queued["total"] == 2 and queued["pages"] == 2 and [i["id"] for i in queued["items"]] == [min(ws.pending)]
