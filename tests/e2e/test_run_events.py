"""GET /api/operations/{id}/events on the real system: a run's progress as server-sent events, over the
real HTTP stack and broker. A run in flight streams its state and the stream ends with its final one,
the same as the Activity list then shows; another workspace's token gets the documented 404, no token
the documented 401; an API told to stop (SIGTERM) ends its open streams and exits. Waits poll until the
system answers: no time limits, but for how long a stopping API may take to exit."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import uuid

import httpx
import pytest

from harness import data
from harness.system import ROOT, free_port
from tests.e2e import helpers
from tests.e2e.monitor_fixtures import in_workspace

IN_FLIGHT = ("queued", "running")
STOP_WAIT_S = 60  # how long a stopping API may take, as the SIGTERM fault campaign allows


@pytest.fixture(scope="module")
def ws(system):
    lake = system.datastore_root / f"events-{uuid.uuid4().hex[:8]}"
    lake.mkdir()
    (lake / "notes.txt").write_text("call back jane.doe@example.com\n")
    with in_workspace(system, "Events") as ws, in_workspace(system, "Events B") as other:
        ws.other = other
        ws.connector = helpers.ok(ws.admin.post("/api/v1/connectors", json={
            "name": "Notes", "type": "local_dir", "config": {"path": lake.name}}), 201)["id"]
        yield ws


def run_of(client: httpx.Client, scan_id: str) -> int:
    """The run id of a scan: the Activity list's item whose detail names it."""
    def found():
        for item in client.get("/api/operations", params={"size": 1000}).json()["items"]:
            if client.get(f"/api/operations/{item['id']}").json().get("scan_id") == scan_id:
                return item["id"]
        return None
    return helpers.until(found)


def byoc_scan(ws) -> tuple[str, int]:
    """A scan that stays in flight until it is cancelled: it waits for workers nobody starts."""
    scan_id = helpers.ok(ws.admin.post("/api/v1/scans/parallel", json={
        "connectors": [ws.connector], "type": "full", "options": {"execution": "byoc"}}), 201)["scan_id"]
    return scan_id, run_of(ws.admin, scan_id)


def read_events(response: httpx.Response):
    """(name, data) of each server-sent event, as they arrive, until the server ends the stream."""
    name, data_lines = None, []
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data_lines.append(line.removeprefix("data: "))
        elif line == "" and data_lines:
            yield name, json.loads("\n".join(data_lines))
            name, data_lines = None, []


def stream(client: httpx.Client, run_id: int):
    return client.stream("GET", f"/api/operations/{run_id}/events", timeout=httpx.Timeout(60, read=None))


def test_a_run_in_flight_streams_until_its_final_state(ws):
    scan_id, run_id = byoc_scan(ws)
    with stream(ws.viewer, run_id) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        events = read_events(r)
        name, first = next(events)
        assert name == "run" and first["id"] == run_id and first["result"] in IN_FLIGHT, first
        helpers.ok(ws.member.post(f"/api/v1/scans/{scan_id}/cancel"))
        rest = list(events)  # the server ends the stream once the run has finished
    assert rest, "no event after the cancel"
    assert all(name == "run" and e["id"] == run_id for name, e in rest)
    assert all(e["result"] in IN_FLIGHT for _, e in rest[:-1])
    final = rest[-1][1]
    assert final["result"] == "aborted", final
    listed = ws.admin.get(f"/api/operations/{run_id}").json()
    assert (final["result"], final["status"]) == (listed["result"], listed["status"])


def test_a_compliance_scan_streams_its_violation_count(ws):
    rows = data.transactions(3000, seed=25)
    up = helpers.upload(ws.admin, data.to_csv(rows))
    mapping = helpers.confirm(ws.admin, up["upload_id"])
    scan_id = helpers.run(ws.admin, helpers.policy(ws.admin)["id"], up["upload_id"], mapping["mapping_id"])
    run_id = run_of(ws.admin, scan_id)
    with stream(ws.admin, run_id) as r:
        assert r.status_code == 200
        events = [e for name, e in read_events(r) if name == "run"]
    assert events and all(e["result"] in IN_FLIGHT for e in events[:-1])
    final = events[-1]
    scan = helpers.wait_settled(ws.admin, scan_id)
    expected = sum(len(found) for found in data.expected(rows).values())
    assert final["result"] == "success" and scan["status"] == "completed"
    assert final["status"]["anomalies_identified"] == scan["violation_count"] == expected


def test_a_finished_run_streams_its_final_state_once(ws):
    scan_id, run_id = byoc_scan(ws)
    helpers.ok(ws.admin.post(f"/api/v1/scans/{scan_id}/cancel"))
    helpers.until(lambda: ws.admin.get(f"/api/operations/{run_id}").json()["result"] == "aborted")
    with stream(ws.admin, run_id) as r:
        events = list(read_events(r))
    assert [(name, e["result"]) for name, e in events] == [("run", "aborted")]


def test_another_workspace_and_no_token_see_nothing(system, ws):
    scan_id, run_id = byoc_scan(ws)
    try:
        r = ws.other.admin.get(f"/api/operations/{run_id}/events")
        assert r.status_code == 404 and r.json() == {"error": "NOT_FOUND", "message": "Run not found"}, r.text
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = httpx.get(f"{system.url}/api/operations/{run_id}/events", headers=headers)
            assert r.status_code == 401, r.text
            assert r.json() == {"error": "UNAUTHORIZED", "message": "Missing or invalid API token"}
    finally:
        helpers.ok(ws.admin.post(f"/api/v1/scans/{scan_id}/cancel"))


@pytest.mark.parametrize("processes", [1, 2])
def test_a_stopping_api_ends_its_open_streams(system, ws, processes):
    """A second API (of one process, or of two on its port) over the same system, SIGTERMed while a client
    reads a run that never ends."""
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "cli.main", "api"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env={**system.env, "SCANLEDGER_PORT": str(port),
                                                           "SCANLEDGER_API_PROCESSES": str(processes)})
    scan_id, run_id = byoc_scan(ws)
    try:
        url = f"http://127.0.0.1:{port}"
        helpers.until(lambda: _answers(url))
        client = httpx.Client(base_url=url, headers=ws.admin.headers, timeout=httpx.Timeout(60, read=None))
        with client, stream(client, run_id) as r:
            events = read_events(r)
            assert next(events)[1]["result"] in IN_FLIGHT
            ended = threading.Event()

            def drain():
                try:
                    for _ in events:
                        pass
                except httpx.HTTPError:
                    pass  # the connection closed under the reader: ended too
                ended.set()

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            api.send_signal(signal.SIGTERM)
            assert api.wait(STOP_WAIT_S) in (0, -signal.SIGTERM)  # uvicorn raises the signal again once stopped
            reader.join()
            assert ended.is_set()
        assert ws.admin.get(f"/api/operations/{run_id}").json()["result"] in IN_FLIGHT  # the run itself goes on
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()
        helpers.ok(ws.admin.post(f"/api/v1/scans/{scan_id}/cancel"))


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/openapi.json", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
