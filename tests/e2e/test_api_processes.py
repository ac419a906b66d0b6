"""SCANLEDGER_API_PROCESSES=2: one `scanledger api` serves its port from two processes. A scan runs
through them; each process answers alone while the other is dead, a killed one is replaced, and a
SIGTERM to the command stops them all."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from harness import data
from harness.system import System
from tests.e2e.helpers import policy, scan_once

PROCESSES = 2


@pytest.fixture(scope="module")
def system(kafka, tmp_path_factory):
    running = System(kafka, tmp_path_factory.mktemp("apiprocs"), SCANLEDGER_API_PROCESSES=str(PROCESSES)).start()
    yield running
    running.stop()


def serving(parent: int) -> list[int]:
    """The pids of the API's serving processes: the children uvicorn spawned (not its resource tracker)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def wait_for(predicate, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.1)
    raise AssertionError(f"not reached in {timeout_s} s: {what}")


def answered(system, times: int = 20) -> None:
    """`times` reads, each on a connection of its own (so any serving process may take it), all 200."""
    for _ in range(times):
        with system.client() as api:
            assert api.get("/api/operations").status_code == 200


def test_a_scan_runs_through_two_api_processes(system):
    api_pid = system.processes["api"].pid
    assert len(wait_for(lambda: len(serving(api_pid)) == PROCESSES and serving(api_pid), "2 API processes")) == 2
    with system.client() as api:
        _, scan = scan_once(api, data.transactions(2000, seed=5), policy(api)["id"])
    assert scan["status"] == "completed"
    answered(system)


def test_each_process_serves_alone_and_a_killed_one_is_replaced(system):
    api_pid = system.processes["api"].pid
    first = wait_for(lambda: len(serving(api_pid)) == PROCESSES and serving(api_pid), "2 API processes")
    for victim in first:  # in turn: the survivor (or the replacement) answers every request alone
        before = set(serving(api_pid))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda v=victim: not alive(v), f"process {victim} gone")
        replaced = wait_for(lambda b=before: len(set(serving(api_pid)) - b) == 1 and len(serving(api_pid)) == PROCESSES,
                            "a new process in the dead one's place")
        assert victim not in serving(api_pid) and replaced
        wait_for(lambda: httpx.get(f"{system.url}/healthz", timeout=5).status_code == 200, "healthy again")
        answered(system)


def test_sigterm_stops_every_api_process(system):
    api = system.processes["api"]
    children = wait_for(lambda: len(serving(api.pid)) == PROCESSES and serving(api.pid), "2 API processes")
    api.send_signal(signal.SIGTERM)
    assert api.wait(timeout=60) == 0
    wait_for(lambda: not any(alive(pid) for pid in children), "every API process stopped")
