"""Replay with helper processes (projections.parallel_replay) arrives at exactly the rows of a replay in
one process and of the live projector: on a log of several scans in two workspaces, reruns of a policy
(their deltas read the violations' signatures), poison records on the violations topic (refused as
they are decoded, and as they are applied) and a record of another type there; the refusals are
counted and not sent to the dead-letter topic again. A helper killed before it finished fails the replay
in one line; run again, the rows are exact. A replay killed mid-way leaves no helper running and no scratch
file.

The module runs on a system of its own, its tests in order (the helper kills replay what the first
test scanned): each replays the whole log several times, and the session's shared log (every e2e
module's scans before it) made that minutes in CI."""
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from harness import data, databases
from harness.system import System
from services.domain import contracts as c
from services.domain.envelope import encode, make_event
from services.stores.read_models import TABLES
from tests.e2e.helpers import policy, rows, scan_once
from tests.e2e.monitor_fixtures import in_workspace
from tests.e2e.test_dead_letters import poison, produce, projected_past


@pytest.fixture(scope="module")
def system(kafka, tmp_path_factory):
    running = System(kafka, tmp_path_factory.mktemp("replay-parallel"), SCANLEDGER_UNIT_RECORDS="700").start()
    yield running
    running.stop()


VIOLATION_PARTITIONS = 12  # services.settings: the topic's default
REFUSED = re.compile(r"replay refused (\d+) records: (\d+) sent to \S+, (\d+) were there already")


def replayed(system, tmp_path, helpers: int) -> tuple[str, str]:
    target = databases.scratch(tmp_path, f"replay-{helpers}")
    out = subprocess.run(system.cli_args("replay", "--into", target, "--helpers", str(helpers)), env=system.env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "replayed" in out.stdout, out.stderr
    return target, out.stderr


def a_status_change_on_the_violations_topic(scan_id: str, violations: str, n: int) -> tuple[str, bytes, bytes, list]:
    """A valid record of another type than a violation on the violations topic, on the scan's partition: no
    producer writes one, but the projector applies what it reads, and so must a replay. (Of a scan not on
    the log: applied before or after the scan's own events, its rows are the same.)"""
    event = make_event(c.VIOLATION_STATUS_CHANGED, scan_id, {
        "scan_id": f"ghost-{scan_id}-{n}", "violation_id": f"ghost-{scan_id}-{n}", "status": "dismissed",
        "previous_status": "open", "compliance_score": 12.5, "changed_by": "test",
        "changed_at": "2026-01-01T00:00:00Z"}, id=f"status-{scan_id}-{n}", source="test", workspace_id="default")
    return violations, scan_id.encode(), encode(event), [("ce_type", event["type"].encode())]


def test_a_parallel_replay_is_the_serial_one_and_the_live_one(api, system, kafka, tmp_path):
    prefix = system.env["SCANLEDGER_TOPIC_PREFIX"]
    violations, scan_events = f"{prefix}.violations", f"{prefix}.scan-events"
    pol = policy(api, name="replayed in parallel")
    first, _ = scan_once(api, data.transactions(2000, seed=41), pol["id"])
    scan_once(api, data.transactions(2000, seed=42), pol["id"])  # a rerun: its delta against the first
    with in_workspace(system, "replayed in parallel") as other:
        theirs = policy(other.admin, name="theirs")
        for seed in (43, 44):
            scan_once(other.admin, data.transactions(1500, seed=seed), theirs["id"])
    landed = produce(kafka, [rec for rec in poison(first, violations, scan_events) if rec[0] != violations])
    # on every partition of the violations topic, so every share of a parallel replay has them
    landed += on_every_partition(kafka, lambda n: [
        *(record for record in poison(first, violations, scan_events) if record[0] == violations),
        a_status_change_on_the_violations_topic(first, violations, n)], VIOLATION_PARTITIONS)
    projected_past(system.db_url, landed)

    serial, serial_log = replayed(system, tmp_path, 0)
    for helpers in (1, 2, 3):
        parallel, parallel_log = replayed(system, tmp_path, helpers)
        for table in TABLES:
            assert rows(parallel, table) == rows(serial, table), (helpers, table)
            if table != "projector_offsets":  # the live projector's run on past this replay's end
                assert rows(parallel, table) == rows(system.db_url, table), (helpers, table)
        refused = REFUSED.search(parallel_log).groups()
        assert refused == REFUSED.search(serial_log).groups()
        # every record refused (all but the status changes), none sent: the projector sent them all before
        assert int(refused[0]) >= len(landed) - VIOLATION_PARTITIONS and refused[1] == "0"
    conn = databases.connect_read(parallel)
    try:  # the reruns' deltas, computed after the merge from the violations' signatures
        assert conn.execute("SELECT COUNT(*) FROM rm_scans WHERE delta IS NOT NULL").fetchone()[0] >= 2
    finally:
        conn.close()


def on_every_partition(bootstrap: str, records: Callable[[int], list[tuple[str, bytes, bytes, list]]],
                       partitions: int) -> list[tuple[str, int, int]]:
    """Produce each partition's records (records(partition)) to it; returns where they landed."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    landed = []

    def on_delivery(err, msg):
        assert err is None, err
        landed.append((msg.topic(), msg.partition(), msg.offset()))

    for partition in range(partitions):
        for topic, key, value, headers in records(partition):
            producer.produce(topic, key=key, value=value, headers=headers, partition=partition,
                             on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return landed


def test_a_helper_killed_before_it_finished_fails_the_replay_and_a_new_one_is_exact(system, tmp_path):
    target = databases.scratch(tmp_path, "killed")
    replay = subprocess.Popen(system.cli_args("replay", "--into", target, "--helpers", "2"), env=system.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    helper = None
    while helper is None and replay.poll() is None:
        helper = next(iter(children(replay.pid)), None)
    assert helper is not None, replay.communicate()
    os.kill(helper, signal.SIGKILL)  # before it finished (the log here is loaded in a few ms: sooner is a race)
    out, err = replay.communicate()
    assert replay.returncode != 0, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("scanledger replay: replay helper") and "exited with code -9" in last, err
    again, _ = replayed(system, tmp_path, 2)
    for table in TABLES:
        if table != "projector_offsets":
            assert rows(again, table) == rows(system.db_url, table), table


def test_a_replay_killed_mid_way_leaves_no_helper_behind_and_a_new_one_is_exact(system, tmp_path):
    target = databases.scratch(tmp_path, "killed")
    before = scratch()
    replay = subprocess.Popen(system.cli_args("replay", "--into", target, "--helpers", "2"), env=system.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    helpers = []
    while len(helpers) < 2 and replay.poll() is None:
        helpers = children(replay.pid)
    assert len(helpers) == 2, replay.communicate()
    while not any(cpu_ticks(h) >= 1 for h in helpers) and replay.poll() is None:  # loading their shares
        pass
    replay.kill()
    replay.communicate()
    while [h for h in helpers if alive(h)]:  # each stops at its next word to the replay, which is gone
        pass
    assert scratch() <= before, "its scratch files are left behind"
    again, _ = replayed(system, tmp_path, 2)
    for table in TABLES:
        if table != "projector_offsets":
            assert rows(again, table) == rows(system.db_url, table), table


def scratch() -> set[Path]:
    """The replays' scratch directories (projections.parallel_replay)."""
    return set(Path(tempfile.gettempdir()).glob("scanledger-replay-*"))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    """A replay's helpers: its children (Linux), forked as it starts."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except FileNotFoundError:
            pass
    return found


def cpu_ticks(pid: int) -> int:
    """The process's user + system CPU time, in clock ticks (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
