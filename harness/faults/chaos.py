"""Chaos: random faults under a mixed workload on the scaled system, for bench/chaos.py (issue 24) and
its short test (tests/faults/test_chaos.py).

The system is ScaleOut's (three streams workers, two projectors and two API processes on one database,
the clients taking turns between the APIs) on BrokerNodeKill's local 3-node KRaft cluster (topics on 3
replicas, 2 in sync for a write, producers acks=all). The workload is one scan of each of the four
kinds (workload.py): a compliance scan of the seeded upload, a monitor scan of the workspace, a catalog
sync of a datastore of tables and a sensitive-data scan of copies of the labelled corpus. `setup` runs
it unfaulted: the reference, checked against the answers computed independently (oracle.py), then
more unfaulted runs for the baseline settle times.

Each *round* POSTs the workload again and injects 1-3 faults planned by a seeded generator (the plan is
said before the round starts): SIGKILL of a worker, a projector or an API process (one of those
running), SIGKILL of one broker node (one of three at a time: a node still down is brought back first
and the cluster waited in sync), or a restart of the whole system (every process SIGTERMed at once, as
`up`'s Ctrl-C does, and started again; the brokers stay up). A fault lands once a planned number of the
round's unit reports (of all four scans: some reported, not all) are on the ledger, and its victim
comes back a planned few seconds later or once the round has settled; the latter only while another
process of its role runs (with no worker left until the round settles, the stall would be the
harness's, not the product's), else after 3 s. The round waits, up to its deadline, for every scan to
be final, brings the system back to full strength and compares each scan with the reference. After the
last round, `finish` replays the whole log into another database and compares it with the live read
models.

Nothing waits without a deadline: a round whose scans are not final by its deadline is *stalled*, with
the stuck scans' units, the consumer lag and the workers' logs in its report; the system is then
restarted whole so the next round does not inherit it. Between faults the harness restarts a process
that exits by itself (a watchdog), as up's supervisor would, and notes it.
"""
from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka.admin import AdminClient

from harness.faults.kinds import ScaleOut, _wait_answers, leaders, wait_in_sync, wait_members
from harness.faults.knobs import FINAL, ROWS, code_version
from harness.faults.oracle import (
    catalog_problems,
    differences,
    fingerprint,
    monitor_problems,
    oracle_problems,
    replay_problems,
    sensitive_problems,
)
from harness.faults.probes import QUIET, log
from harness.faults.systems import Procs
from harness.faults.trials import Campaign, Trial
from harness.faults.waiting import UnitWatch
from harness.faults.workload import Workload
from harness.system import TOKEN, free_port
from services.settings import Settings

# --------------------------------------------------------------------------- chaos

FAULTS = ("worker_kill", "projector_kill", "api_kill", "broker_node_kill", "system_restart")
WORKERS, PROJECTORS, APIS = ScaleOut.WORKERS, ScaleOut.PROJECTORS, ("api", "api2")
ROLE = {"worker_kill": WORKERS, "projector_kill": PROJECTORS, "api_kill": APIS}
NODES = 3
DEADLINE_S = 300.0  # a round's scans final within this of the POST: up to 3 faults, a restart of everything among them
BACK_S = (1.0, 12.0)  # a victim that comes back "after a few seconds": uniformly in this range
LAST_BACK_S = 3.0  # the last running process of its role, planned back after the round: back after this instead
SESSION_S = 30.0  # a SIGKILLed consumer stays in its group this long at most (session timeouts: 10 s)
LEAVE_S = 5.0  # a consumer group empties within this of its processes' clean stop
NODE_CHANGE_S = 60.0  # a broker node down or back this recently is named beside a group left in a rebalance


def group_state(settings: Settings, group: str) -> tuple[int, str]:
    """(members, state) of a consumer group; (0, "unknown") if the cluster does not say."""
    with contextlib.suppress(Exception):
        admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **QUIET})
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        return len(desc.members), desc.state.name
    return 0, "unknown"


def command_of(name: str) -> str:
    return "worker" if name in WORKERS else "projector" if name in PROJECTORS else "api"


@dataclass
class Fault:
    kind: str  # one of FAULTS
    at_units: int  # lands once this many of the round's units have reported
    back_s: float | None  # its victim back this long after it, or None: once the round settled
    pick: float  # which of the candidates is the victim, drawn in [0, 1)
    victim: str = ""
    at_s: float | None = None  # when it landed, from the POST (None: it did not)
    in_flight: list[str] = field(default_factory=list)  # the scans not final when it landed
    note: str = ""

    @property
    def injected(self) -> bool:
        return self.at_s is not None

    def plan(self) -> str:
        back = ("" if self.kind == "system_restart" else ", back once the round settled" if self.back_s is None
                else f", back after {self.back_s:.1f} s")
        return f"{self.kind} after {self.at_units} unit reports{back}"

    def __str__(self) -> str:
        if not self.injected:
            return f"{self.plan()}: not injected ({self.note})"
        back = ("" if self.kind == "system_restart" else "; back once the round settled" if self.back_s is None
                else f"; back after {self.back_s:.1f} s")
        return (f"{self.kind} of {self.victim} at +{self.at_s:.1f} s, after {self.at_units} unit reports "
                f"(in flight: {', '.join(self.in_flight) or 'none'}){back}" + (f"; {self.note}" if self.note else ""))


@dataclass(repr=False)
class Round(Trial):
    faults: list[Fault] = field(default_factory=list)
    exact_by: dict[str, bool] = field(default_factory=dict)  # scan label -> ended final and equal to the reference
    settle_by: dict[str, float | None] = field(default_factory=dict)  # scan label -> seconds from the POST to final

    def summary(self) -> str:
        lines = super().summary().split("\n")
        return "\n".join([lines[0], *(f"  fault: {f}" for f in self.faults), *lines[1:]])


class Poller:
    """Scan statuses through whichever API answers (a load balancer's view: a dead API is skipped)."""

    def __init__(self, target):
        self.target = target
        self.turn = 0
        self.client: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self.client is None:
            urls = self.target.api_urls
            self.client = httpx.Client(base_url=urls[self.turn % len(urls)], timeout=5,
                                       headers={"Authorization": f"Bearer {TOKEN}"})
        return self.client

    def status(self, scan_id: str) -> str | None:
        for _ in range(len(self.target.api_urls)):
            try:
                r = self._client().get(f"/api/scan/{scan_id}", timeout=5)
                return r.json().get("status") if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                self.close()
                self.turn += 1
        return None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class Chaos(Campaign):
    """The scaled system on a 3-node cluster, a mixed workload, and rounds of random faults."""

    kind = "chaos"

    def __init__(self, tmp: Path, seed: int, deadline_s: float = DEADLINE_S, rows: int = ROWS, say=None):
        super().__init__("", tmp, deadline_s)
        self.rows = rows
        self.seed = seed
        self.rng = random.Random(seed)
        self.say = say or log
        self.cluster: Settings | None = None
        self.nodes_down: set[int] = set()
        self._brokers: list[threading.Thread] = []  # nodes being started again
        self._restores: dict[str, float] = {}  # process name or "node-<i>" -> when it comes back (monotonic)
        self._last_sigkill: dict[str, float] = {}  # group role -> when a process of it was last SIGKILLed
        self._node_change = -1e9  # when a broker node was last killed or started again (monotonic)
        self.baseline_by: dict[str, list[float]] = {}

    # -- the system
    def make_target(self) -> Procs:
        from cli import localbroker

        self.cluster = Settings(data_dir=self.tmp / "cluster-kafka", broker_port=free_port(2 * NODES),
                                broker_nodes=NODES)
        localbroker.start(self.cluster)
        self.target = Procs(self.cluster.bootstrap_servers, self.tmp / "chaos-system", rows=self.rows,
                            SCANLEDGER_REPLICATION_FACTOR=str(NODES))
        self.target.start()
        api2 = free_port()
        self.target.spawn("api2", "api", SCANLEDGER_PORT=str(api2))
        self.target.api_urls.append(f"http://127.0.0.1:{api2}")
        self.full_strength()
        return self.target

    def running(self, name: str) -> bool:
        process = self.target.processes.get(name)
        return process is not None and process.poll() is None

    def spawn(self, name: str) -> None:
        self.target._restart_at.pop(name, None)  # started here: not also by supervise() later
        self.target.spawn(name, command_of(name))

    def full_strength(self) -> None:
        """Every node and process running, every partition on 3 in-sync replicas, every process in its
        group and every API answering: what a round's faults left down comes back."""
        from cli import localbroker

        self._join_brokers()
        self._restores = {}
        if self.nodes_down:
            localbroker.start(self.cluster)
            self.nodes_down = set()
            self._node_change = time.monotonic()
        lagging = wait_in_sync(self.target.settings, NODES, time.monotonic() + 120)
        if lagging:
            raise RuntimeError(f"partitions short of {NODES} in-sync replicas 120 s after every node was up: "
                               f"{lagging[:10]}")
        for name in (*WORKERS, *PROJECTORS, *APIS):
            if not self.running(name):
                self.spawn(name)
        settings = self.target.settings
        wait_members(settings, settings.streams_group, len(WORKERS))
        wait_members(settings, settings.projector_group, len(PROJECTORS))
        for url in self.target.api_urls:
            _wait_answers(url)

    def _join_brokers(self) -> None:
        for thread in self._brokers:
            thread.join(150)
        self._brokers = []

    def setup(self) -> None:
        self.make_target()
        self.workload = Workload.prepare(self.target, monitor=True, rows=self.rows, catalog=True, sensitive=True)
        reference = self.unfaulted(0)
        if not reference.exact:
            raise AssertionError(f"the unfaulted reference run of chaos failed:\n{reference.summary()}")

    def teardown(self) -> None:
        from cli import localbroker

        self._join_brokers()
        if self.target is not None:
            self.target.stop()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                localbroker.stop(self.cluster)

    def heal(self) -> None:
        """After a stall or a round that could not finish: every node up, every process started afresh."""
        from cli import localbroker

        self._join_brokers()
        with contextlib.suppress(Exception):
            localbroker.start(self.cluster)
            self.nodes_down = set()
        with contextlib.suppress(Exception):
            self.target.stop()
            self.full_strength()

    # -- runs
    def plan(self) -> list[Fault]:
        """1-3 faults at distinct points of the round's unit reports, each with its kind, its victim's
        return and its pick of victim, all drawn now (so the plan depends on the seed alone)."""
        total = sum(self.units.values())
        points = sorted(self.rng.sample(range(1, total), self.rng.randint(1, 3)))
        faults = []
        for at in points:
            kind = self.rng.choice(FAULTS)
            back = None if self.rng.random() < 0.5 else round(self.rng.uniform(*BACK_S), 1)
            faults.append(Fault(kind, at, back, self.rng.random()))
        return faults

    def unfaulted(self, index: int) -> Round:
        """A run with no fault: the first is the reference (checked against the independent answers)."""
        run = Round("none", index)
        try:
            self.full_strength()
            t0 = time.monotonic()
            with self.target.client() as api:
                run.scans = self.workload.start(api)
            self.drive(run, t0, None)
            if run.settled:
                fps = {label: fingerprint(self.target, s) for label, s in run.scans.items()}
                if not self.reference:
                    run.problems += oracle_problems(fps["compliance"], self.workload.rows, self.workload.heavy)
                    run.problems += sensitive_problems(fps["sensitive"]) + catalog_problems(fps["catalog"])
                    run.problems += monitor_problems(fps["monitor"])
                    if not run.problems:
                        self.code = code_version()
                        self.reference = fps
                        self.units = {label: len(fp["units"]) for label, fp in fps.items()}
                else:
                    for label, fp in fps.items():
                        run.problems += [f"{label}: {d}" for d in differences(self.reference[label], fp)]
        except Exception as exc:
            run.problems.append(f"run aborted: {exc!r}\n{traceback.format_exc()[-3000:]}")
        run.exact = run.settled and not run.problems
        if run.exact:
            self.baseline_s.append(run.settle_s)
            for label, s in run.settle_by.items():
                self.baseline_by.setdefault(label, []).append(s)
        return run

    def round(self, index: int) -> Round:
        """One round: the workload POSTed, its planned faults injected mid-scan, every scan final and
        compared with the reference, the system back at full strength."""
        rnd = Round("chaos", index)
        rnd.faults = self.plan()
        self.say(f"round {index}: {'; '.join(f.plan() for f in rnd.faults)}")
        try:
            self.full_strength()
            watch = UnitWatch(self.target.settings)
            try:
                time.sleep(0.3)
                t0 = time.monotonic()
                with self.target.client() as api:
                    rnd.scans = self.workload.start(api)
                self.drive(rnd, t0, watch)
            finally:
                watch.close()
            self.compare(rnd)
        except Exception as exc:  # a round that could not even run is a failed round, with why
            rnd.problems.append(f"round aborted: {exc!r}\n{traceback.format_exc()[-3000:]}")
            self.heal()
        rnd.exact = rnd.settled and not rnd.problems
        return rnd

    def drive(self, rnd: Round, t0: float, watch: UnitWatch | None) -> None:
        """Until every scan of the round is final or the deadline: inject each fault once its count of
        unit reports is on the ledger, bring victims back when due, restart what exits by itself."""
        deadline = t0 + self.deadline_s
        pending = list(rnd.faults) if watch is not None else []
        done: dict[str, float | None] = dict.fromkeys(rnd.scans.values())
        poller = Poller(self.target)
        try:
            while True:
                if pending and watch.reported(rnd.scans.values()) >= pending[0].at_units:
                    fault = pending.pop(0)
                    fault.at_s = time.monotonic() - t0
                    fault.in_flight = [label for label, s in rnd.scans.items() if done[s] is None]
                    self.inject(fault, rnd)
                    self.say(f"  {fault}")
                    continue
                self.restore_due()
                rnd.restarts += (exits := self.target.supervise())
                rnd.notes += exits[:3]
                for s in [s for s, t in done.items() if t is None]:
                    if poller.status(s) in FINAL:
                        done[s] = time.monotonic()
                if all(t is not None for t in done.values()) or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        finally:
            poller.close()
        for fault in pending:
            fault.note = "every scan was final before it" if all(done.values()) else "the deadline came first"
        rnd.settle_by = {label: (done[s] - t0 if done[s] is not None else None) for label, s in rnd.scans.items()}
        rnd.settled = all(t is not None for t in done.values())
        rnd.stalled = not rnd.settled
        if rnd.settled:
            rnd.settle_s = max(done.values()) - t0
        else:
            stuck = [s for s, t in done.items() if t is None]
            labels = [label for label, s in rnd.scans.items() if s in stuck]
            rnd.problems.append(f"not final {self.deadline_s:.0f} s after the POST: {labels} {stuck}")
            rnd.report = self.stall_report(stuck)

    def compare(self, rnd: Round) -> None:
        """Back to full strength (a stalled round: restarted whole), then each final scan against the reference."""
        try:
            self.full_strength() if rnd.settled else self.heal()
        except Exception as exc:
            rnd.problems.append(f"the system did not come back to full strength after the round: {exc!r}")
            self.heal()
        if (now := code_version()) != self.code:
            rnd.problems.append(f"the product's code changed during the run ({self.code} -> {now}): the reference "
                                "run no longer applies, so this round proves nothing")
        for label, scan_id in rnd.scans.items():
            if rnd.settle_by.get(label) is None:
                rnd.exact_by[label] = False
                continue
            diffs = differences(self.reference[label], fingerprint(self.target, scan_id))
            rnd.exact_by[label] = not diffs
            rnd.problems += [f"{label} {scan_id}: {d}" for d in diffs]

    def finish(self) -> list[str]:
        """After the last round: the whole log replayed into another database equals the live read models."""
        try:
            self.full_strength()
        except Exception as exc:
            return [f"the system did not come back to full strength before the replay: {exc!r}"]
        return replay_problems(self.target, self.tmp)

    # -- the faults
    def inject(self, fault: Fault, rnd: Round) -> None:
        try:
            if fault.kind == "system_restart":
                self.system_restart(fault, rnd)
            elif fault.kind == "broker_node_kill":
                self.kill_node(fault)
            else:
                self.kill_process(fault)
        except Exception as exc:
            rnd.problems.append(f"{fault.kind} could not be injected: {exc!r}\n{traceback.format_exc()[-2000:]}")

    def kill_process(self, fault: Fault) -> None:
        role = ROLE[fault.kind]
        up = [n for n in role if self.running(n)]
        if not up:
            fault.at_s, fault.note = None, f"no {command_of(role[0])} process was running"
            return
        victim = up[int(fault.pick * len(up))]
        fault.victim = victim
        self.target.kill(victim)
        self._last_sigkill[command_of(victim)] = time.monotonic()
        if fault.back_s is None and len(up) == 1:
            fault.back_s, fault.note = LAST_BACK_S, "the last of its role running: back after 3 s, not after the round"
        if fault.back_s is None:
            self._restores.pop(victim, None)
        else:
            self._restores[victim] = time.monotonic() + fault.back_s

    def kill_node(self, fault: Fault) -> None:
        from cli import localbroker

        if self.nodes_down:  # one of three at a time: the node down comes back, in sync, first
            down = sorted(self.nodes_down)
            started = time.monotonic()
            self._join_brokers()
            localbroker.start(self.cluster)
            self.nodes_down = set()
            self._node_change = time.monotonic()
            for i in down:
                self._restores.pop(f"node-{i}", None)
            lagging = wait_in_sync(self.target.settings, NODES, time.monotonic() + 120)
            fault.note = (f"node {down} brought back first, " + (f"not in sync 120 s later: {lagging[:5]}" if lagging
                          else f"in sync after {time.monotonic() - started:.1f} s"))
        victim = 1 + int(fault.pick * NODES)
        led = leaders(self.target.settings)
        localbroker.kill_node(self.cluster, victim)
        self.nodes_down.add(victim)
        self._node_change = time.monotonic()
        fault.victim = f"broker node {victim} (leader of {led.count(victim)} of {len(led)} partitions)"
        if fault.back_s is not None:
            self._restores[f"node-{victim}"] = time.monotonic() + fault.back_s

    def system_restart(self, fault: Fault, rnd: Round) -> None:
        """Every process SIGTERMed at once (as up's Ctrl-C), each given 30 s to stop cleanly, all started again."""
        names = [n for n in (*WORKERS, *PROJECTORS, *APIS) if self.running(n)]
        started = time.monotonic()
        for name in names:
            self.target.killed.add(name)
            self.target.processes[name].terminate()
        codes: dict[str, int | None] = {}
        for name in names:
            try:
                codes[name] = self.target.processes[name].wait(timeout=max(0.1, started + 30 - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = None
                rnd.problems.append(f"system restart: {self.target._abort(name)}")
        stopped = time.monotonic() - started
        self.left_groups(rnd)
        self._restores = {k: v for k, v in self._restores.items() if k.startswith("node-")}
        for name in (*WORKERS, *PROJECTORS, *APIS):
            if not self.running(name):
                self.spawn(name)
        # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done: an API's clean exit is -15
        odd = {n: c for n, c in codes.items() if c != (-15 if command_of(n) == "api" else 0)}
        fault.victim = f"all {len(names)} processes"
        fault.note = f"stopped in {stopped:.1f} s" + (f", exit codes {odd}" if odd else ", each cleanly")

    def left_groups(self, rnd: Round, wait_s: float = LEAVE_S) -> None:
        """After every process stopped on SIGTERM, their consumer groups empty (a clean stop leaves the group)
        within wait_s. A member may stay longer for a reason of Kafka's: the group caught in a rebalance (a
        process joining late, the coordinator moving after a broker node went or came back) lists the
        members of the rebalance until it ends, and a process SIGKILLed less than SESSION_S ago stays for
        its session timeout; then it is a note, else a problem."""
        settings = self.target.settings
        groups = {"worker": settings.streams_group, "projector": settings.projector_group}
        deadline = time.monotonic() + wait_s
        while (left := {role: got for role, g in groups.items() if (got := group_state(settings, g))[0]}) \
                and time.monotonic() < deadline:
            time.sleep(0.3)
        now = time.monotonic()
        for role, (members, state) in left.items():
            said = (f"{groups[role]} still has {members} member(s), {state}, {wait_s:.0f} s after every process "
                    "stopped on SIGTERM")
            since_kill = now - self._last_sigkill.get(role, -1e9)
            if since_kill < SESSION_S:
                rnd.notes.append(f"system restart: {said} (a {role} was SIGKILLed {since_kill:.0f} s before)")
            elif "REBALANCING" in state:
                nodes = "; a broker node is down" if self.nodes_down else (
                    f"; a broker node came back {now - self._node_change:.0f} s before"
                    if now - self._node_change < NODE_CHANGE_S else "")
                rnd.notes.append(f"system restart: {said} (the members of its rebalance{nodes})")
            else:
                rnd.problems.append(f"system restart: {said}: one did not leave its group")

    def restore_due(self) -> None:
        from cli import localbroker

        now = time.monotonic()
        for key, when in list(self._restores.items()):
            if when > now:
                continue
            del self._restores[key]
            if key.startswith("node-"):
                node = int(key.split("-")[1])

                def start(node: int = node) -> None:
                    with contextlib.suppress(Exception):
                        localbroker.start(self.cluster)
                        self.nodes_down.discard(node)
                        self._node_change = time.monotonic()

                thread = threading.Thread(target=start, daemon=True)
                thread.start()
                self._brokers.append(thread)
            elif not self.running(key):
                self.spawn(key)
