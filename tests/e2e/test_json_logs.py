"""SCANLEDGER_LOG_FORMAT=json: every line each process writes to its log file is a JSON object, with
a line per scan started and finished and an access log; no terminal escape codes in the files."""
from __future__ import annotations

import json
import time

import pytest

from harness import data
from harness.system import System
from tests.e2e.helpers import policy, scan_once


@pytest.fixture(scope="module")
def json_system(kafka, tmp_path_factory):
    running = System(kafka, tmp_path_factory.mktemp("jsonlogs"), SCANLEDGER_LOG_FORMAT="json",
                     SCANLEDGER_UNIT_RECORDS="700").start()
    yield running
    running.stop()


def lines(system, name: str) -> list[dict]:
    text = (system.data_dir / f"{name}.log").read_text()
    assert "\x1b" not in text and "\r" not in text, f"terminal codes in {name}.log"
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def access_lines(system) -> list[dict]:
    return [r for r in lines(system, "api") if r.get("logger") == "scanledger.access"]


def test_every_line_is_json_with_scans_started_and_finished_and_requests(json_system):
    with json_system.client() as api:
        pol = policy(api, name="json logs")
        scan_id, scan = scan_once(api, data.transactions(1000, seed=21), pol["id"])
    assert scan["status"] == "completed", scan
    while True:  # the projector logs a scan's end once the batch holding it is committed
        projector = lines(json_system, "projector")
        finished = [r for r in projector if r.get("scan") == "finished" and r.get("scan_id") == scan_id]
        if finished:
            break
        time.sleep(0.2)
    started = [r for r in projector if r.get("scan") == "started" and r.get("scan_id") == scan_id]
    assert len(started) == 1 and started[0]["kind"] == "compliance" and started[0]["level"] == "info"
    assert finished[0]["status"] == "completed" and finished[0]["violation_count"] == scan["violation_count"]
    assert finished[0]["logger"] == "scanledger.projector" and "timestamp" in finished[0]

    # a request's access line is written once its response has gone out: the last GET may still be on its way
    deadline = time.monotonic() + 30
    access = access_lines(json_system)
    while not any(r["path"] == f"/api/scan/{scan_id}" for r in access) and time.monotonic() < deadline:
        time.sleep(0.1)
        access = access_lines(json_system)
    runs = [r for r in access if r["path"] == "/api/scan/run" and r["method"] == "POST"]
    assert runs and runs[0]["status"] == 200 and runs[0]["route"] == "/api/scan/run"
    assert isinstance(runs[0]["duration_ms"], (int, float))  # the field is there and a number (no speed asserted)
    assert any(r["path"] == f"/api/scan/{scan_id}" and r["route"] == "/api/scan/{id}" for r in access)
    assert lines(json_system, "worker") is not None  # every line of the worker's log parses too
