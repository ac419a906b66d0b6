"""The nine fault kinds, each a `Campaign` with its `inject` (and whatever else it runs or checks
differently): the worker or the projector SIGKILLed, one of two workers SIGKILLed, the broker stopped
for 10 s, one node of a 3-node cluster SIGKILLed, one of three workers or two projectors SIGKILLed,
poison records on a topic, the API SIGTERMed during a POST, `up` interrupted by Ctrl-C; and `KINDS`,
every kind by its name."""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import httpx
import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from harness.faults.knobs import DEADLINE_S, ROWS
from harness.faults.probes import QUIET, connect_ro, partitions, read_topic, tail
from harness.faults.systems import Procs, Up
from harness.faults.trials import Campaign, Trial
from harness.faults.waiting import _wait_final
from harness.faults.workload import Workload, _ok
from harness.system import free_port
from services.domain import contracts as c
from services.domain.envelope import header_type
from services.settings import Settings

# --------------------------------------------------------------------------- the faults


class WorkerKill(Campaign):
    """SIGKILL the worker mid-scan, then start a new one."""
    kind = "worker_kill"

    def inject(self, trial: Trial) -> None:
        self.target.kill("worker")
        self.target.spawn("worker")


class ProjectorKill(Campaign):
    """SIGKILL the projector mid-scan, then start it again."""
    kind = "projector_kill"

    def inject(self, trial: Trial) -> None:
        self.target.kill("projector")
        self.target.spawn("projector")


class TwoWorkers(Campaign):
    """Two workers; one is SIGKILLed mid-scan and not restarted: the other finishes the scan."""
    kind = "two_workers"

    def make_target(self):
        target = super().make_target()
        target.spawn("worker2", "worker")
        wait_members(target.settings, target.settings.streams_group, 2)
        return target

    def run(self, trial: Trial) -> None:
        if "worker2" not in self.target.processes or self.target.processes["worker2"].poll() is not None:
            self.target.spawn("worker2", "worker")
        for name in ("worker", "worker2"):
            if self.target.processes[name].poll() is not None:
                self.target.spawn(name, "worker")
        waited = time.monotonic()
        wait_members(self.target.settings, self.target.settings.streams_group, 2)
        trial.notes.append(f"both workers in a stable group after {time.monotonic() - waited:.1f} s")
        super().run(trial)

    def inject(self, trial: Trial) -> None:
        victim = ("worker", "worker2")[trial.index % 2]
        self.target.kill(victim)
        trial.notes.append(f"killed {victim}; the other worker goes on alone")


def group_members(settings: Settings, group: str) -> int | None:
    with contextlib.suppress(Exception):
        admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **QUIET})
        return len(admin.describe_consumer_groups([group])[group].result(timeout=10).members)
    return None


def wait_members(settings: Settings, group: str, n: int, timeout_s: float = 120) -> None:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **QUIET})
    deadline = time.monotonic() + timeout_s
    members = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            desc = admin.describe_consumer_groups([group])[group].result(timeout=5)
            members = len(desc.members)
            if members >= n and desc.state.name == "STABLE":
                return
        time.sleep(0.3)
    raise RuntimeError(f"group {group} has {members} members, not {n}, after {timeout_s}s")


class ScaleOut(Campaign):
    """Three workers, two projectors and two API processes on one database, the clients taking turns
    between the APIs. Mid-scan one worker or one projector (in turn) is SIGKILLed and left down until
    the scans settle: the others take its partitions, and every scan ends exact."""
    kind = "scale_out"
    WORKERS = ("worker", "worker2", "worker3")
    PROJECTORS = ("projector", "projector2")
    VICTIMS = ("worker2", "projector2", "worker", "projector")

    def make_target(self):
        target = super().make_target()
        api2 = free_port()
        target.spawn("api2", "api", SCANLEDGER_PORT=str(api2))
        target.api_urls.append(f"http://127.0.0.1:{api2}")
        self.full_strength(target)
        return target

    def full_strength(self, target) -> None:
        """Every process of the scaled system running and in its group (a victim of the last trial back)."""
        for name in (*self.WORKERS, *self.PROJECTORS, "api", "api2"):
            if name not in target.processes or target.processes[name].poll() is not None:
                target.spawn(name, "worker" if name in self.WORKERS else "projector" if name in self.PROJECTORS
                             else "api")
        wait_members(target.settings, target.settings.streams_group, len(self.WORKERS))
        wait_members(target.settings, target.settings.projector_group, len(self.PROJECTORS))
        for url in target.api_urls:
            _wait_answers(url)

    def run(self, trial: Trial) -> None:
        self.full_strength(self.target)
        super().run(trial)

    def inject(self, trial: Trial) -> None:
        victim = self.VICTIMS[(trial.index - 1) % len(self.VICTIMS)]
        self.target.kill(victim)
        trial.notes.append(f"killed {victim}; the others go on without it until the scans settle")


def _wait_answers(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the API at {url} is not healthy after {timeout_s}s")


class BrokerStop(Campaign):
    """Stop the broker for 10 s mid-scan and start it again (a broker of the campaign's own).

    While the broker is down, a client POSTs another scan: it gets either a 503 with Retry-After
    (and then no scan of that request may appear) or an answer whose scan ends final and exact."""
    kind = "broker_stop"
    OUTAGE_S = 10.0
    # units long enough that some are still to do when the broker is gone (its clean stop takes a second)
    rows = 4 * ROWS

    def kill_point(self, index: int, attempt: int = 0) -> int:
        return 1

    def make_target(self):
        from cli import localbroker

        self.broker = Settings(data_dir=self.tmp / "broker-stop-kafka", broker_port=free_port(2))
        localbroker.start(self.broker)
        return Procs(self.broker.bootstrap_servers, self.tmp / f"{self.kind}-system", rows=self.rows,
                     SCANLEDGER_REPLICATION_FACTOR="1").start()  # its own single broker, whatever the suite's is

    def teardown(self) -> None:
        from cli import localbroker

        super().teardown()
        with contextlib.suppress(Exception):
            localbroker.stop(self.broker)

    def inject(self, trial: Trial) -> None:
        from cli import localbroker

        known = set(all_scan_ids(self.target))
        localbroker.stop(self.broker)
        stopped = time.monotonic()
        answer: dict = {}

        def post():
            try:
                with self.target.client() as api:
                    r = api.post("/api/scan/run", json=self.workload.body(), headers={"Prefer": "respond-async"},
                                 timeout=120)
                answer.update(status=r.status_code, body=r.text, retry_after=r.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                answer.update(error=repr(exc))

        poster = threading.Thread(target=post, daemon=True)
        poster.start()
        time.sleep(max(0.0, self.OUTAGE_S - (time.monotonic() - stopped)))
        localbroker.start(self.broker)
        poster.join(180)
        trial.notes.append(f"POST during the outage: {answer or 'no answer in 180 s'}")
        if answer.get("status") == 200:
            trial.scans["compliance:during-outage"] = orjson.loads(answer["body"])["scan_id"]
        elif answer.get("status") == 503:
            if not answer.get("retry_after"):
                trial.problems.append("503 during the outage without Retry-After")
        else:
            trial.problems.append(f"POST during the outage answered neither 200 nor 503: {answer}")
        self._known = known

    def check(self, trial: Trial, fault_at: float | None) -> None:
        appeared = set(all_scan_ids(self.target)) - self._known - set(trial.scans.values())
        if appeared:
            trial.problems.append(f"scans appeared that no client was given: {sorted(appeared)}")
            extra = _wait_final(self.target, appeared, time.monotonic() + 60)
            trial.problems += [f"  {s} ended {'final' if t else 'NOT final'}" for s, t in extra.items()]
        super().check(trial, fault_at)
        # after the outage, each process still stops cleanly on SIGTERM (as up's Ctrl-C asks it to)
        for name in list(self.target.processes):
            problem = self.target.stop_cleanly(name)
            if problem:
                trial.problems.append(f"after the outage: {problem}")
            self.target.spawn(name)
        self.target.wait_healthy()


class BrokerNodeKill(Campaign):
    """A 3-node cluster (topics on 3 replicas, 2 in sync for a write, producers acks=all): one node
    SIGKILLed mid-scan, each in turn, and left down until the scans settle, so the other two must
    lead and every scan end final and exact with no stall; then it starts again and catches up (every
    partition back to 3 in-sync replicas)."""
    kind = "broker_node_kill"
    NODES = 3

    def make_target(self):
        from cli import localbroker

        self.cluster = Settings(data_dir=self.tmp / "cluster-kafka", broker_port=free_port(2 * self.NODES),
                                broker_nodes=self.NODES)
        localbroker.start(self.cluster)
        return Procs(self.cluster.bootstrap_servers, self.tmp / f"{self.kind}-system", rows=self.rows,
                     SCANLEDGER_REPLICATION_FACTOR=str(self.NODES)).start()

    def inject(self, trial: Trial) -> None:
        from cli import localbroker

        victim = 1 + (trial.index - 1) % self.NODES
        led = leaders(self.target.settings)
        localbroker.kill_node(self.cluster, victim)
        trial.notes.append(f"SIGKILLed broker node {victim}, leader of {led.count(victim)} of {len(led)} partitions "
                           "of the scan topics; it stays down until the scans settle")

    def check(self, trial: Trial, fault_at: float | None) -> None:
        from cli import localbroker

        super().check(trial, fault_at)  # with the node still down
        localbroker.start(self.cluster)
        lagging = wait_in_sync(self.target.settings, self.NODES, time.monotonic() + 120)
        if lagging:
            trial.problems.append(f"after the node came back, partitions still short of {self.NODES} in-sync "
                                  f"replicas 120 s later: {lagging[:10]}")

    def heal(self) -> None:
        from cli import localbroker

        with contextlib.suppress(Exception):
            localbroker.start(self.cluster)
        super().heal()

    def teardown(self) -> None:
        from cli import localbroker

        super().teardown()
        with contextlib.suppress(Exception):
            localbroker.stop(self.cluster)


def _scan_partitions(settings: Settings):
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **QUIET})
    topics = admin.list_topics(timeout=10).topics
    return [(name, meta) for name, t in topics.items() if name.startswith(settings.topics.prefix + ".")
            for meta in t.partitions.values()]


def leaders(settings: Settings) -> list[int]:
    """The leader of each partition of the system's topics."""
    return [meta.leader for _name, meta in _scan_partitions(settings)]


def wait_in_sync(settings: Settings, replicas: int, deadline: float) -> list[str]:
    """Wait until every partition of the system's topics has `replicas` in-sync replicas; those that do not."""
    while True:
        lagging = []
        with contextlib.suppress(Exception):
            lagging = [f"{name}-{meta.id} isr={meta.isrs}" for name, meta in _scan_partitions(settings)
                       if len(meta.isrs) < replicas]
            if not lagging:
                return []
        if time.monotonic() > deadline:
            return lagging or ["(no metadata)"]
        time.sleep(0.5)


class Poison(Campaign):
    """Poison records (non-JSON bytes, JSON that is not an object, an envelope with invalid data)
    produced to every partition of one topic while a scan runs: the scan completes exact, no process
    stops, /healthz counts the dead letters and the dead-letter topic holds them."""
    kind = "poison"
    restarts_allowed = False
    TOPICS = ("commands", "scan-events", "work", "violations")
    TYPES: ClassVar[dict[str, str]] = {"commands": c.RUN_SCAN, "scan-events": c.UNIT_COMPLETED, "work": c.WORK_UNIT,
             "violations": c.VIOLATION_DETECTED}

    def topic_of(self, index: int) -> str:
        return self.TOPICS[index % len(self.TOPICS)]

    def inject(self, trial: Trial) -> None:
        name = self.topic_of(trial.index)
        topic = f"{self.target.settings.topics.prefix}.{name}"
        scan_id = trial.scans["compliance"]
        with self.target.client() as api:
            before = _ok(api.get("/healthz"), 200, 503)
        self._dead_before = before.get("dead_letters")
        producer = Producer({"bootstrap.servers": self.target.settings.bootstrap_servers, "acks": "all",
                             "partitioner": "murmur2_random", **QUIET})
        self._poison: list[tuple[str, int, bytes]] = []
        tag = uuid.uuid4().hex[:8]
        type_ = self.TYPES[name]
        delivered = []

        def on_delivery(err, msg):
            if err is None:
                delivered.append((msg.topic(), msg.partition(), msg.offset(), msg.value()))

        for p in partitions(self.target.settings, topic):
            bad_event = orjson.dumps({"specversion": "1.0", "id": f"poison-{tag}-{p}", "source": "faults",
                                      "type": type_, "subject": scan_id, "time": "2024-01-01T00:00:00Z",
                                      "workspaceid": "nope",
                                      "data": {"scan_id": scan_id, "poison": True}})
            for value in (b"\xff\x00poison " + tag.encode() + b" {not json", b'["poison", "' + tag.encode() + b'"]',
                          bad_event):
                producer.produce(topic, value=value, key=scan_id.encode(), partition=p,
                                 headers=[("ce_type", type_.encode())], on_delivery=on_delivery)
        producer.flush(30)
        self._poison = delivered
        trial.notes.append(f"{len(delivered)} poison records produced to {topic}")

    def check(self, trial: Trial, fault_at: float | None) -> None:
        restarts = self.target.supervise()
        trial.restarts += restarts
        trial.problems += [f"nothing may stop, but {r}" for r in restarts]
        super().check(trial, fault_at)
        # every poison record on the dead-letter topic, and counted in /healthz
        want = len(self._poison)
        deadline = time.monotonic() + 60
        health: dict = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), self.target.client() as api:
                r = api.get("/healthz")
                health = r.json() | {"http_status": r.status_code}
                counted = health.get("dead_letters")
                if isinstance(counted, int) and counted - (self._dead_before or 0) >= want \
                        and r.status_code == 200:
                    break
            time.sleep(0.5)
        counted = health.get("dead_letters")
        if not isinstance(counted, int):
            trial.problems.append(f"/healthz has no dead_letters count: {health}")
        elif counted - (self._dead_before or 0) < want:
            trial.problems.append(f"/healthz dead_letters went {self._dead_before} -> {counted}, "
                                  f"but {want} poison records were produced")
        if health.get("http_status") != 200:
            trial.problems.append(f"/healthz not ok after the poison records: {health}")
        settings = self.target.settings
        dead_topic = f"{settings.topics.prefix}.dead-letter"
        try:
            letters = read_topic(settings, dead_topic, timeout_s=30)
        except Exception as exc:
            letters = []
            trial.problems.append(f"could not read {dead_topic}: {exc!r}")
        found = 0
        for topic, _p, offset, value in self._poison:
            ok = False
            for _, _, _, headers, _, dead_value in letters:
                values = {(v.decode(errors='replace') if isinstance(v, bytes) else str(v)) for _, v in headers}
                if dead_value == value and topic in values and str(offset) in values:
                    ok = True
                    break
            found += ok
        trial.notes.append(f"/healthz dead_letters {self._dead_before} -> {counted}; {found} of {want} poison "
                           f"records on {dead_topic} ({len(letters)} dead letters there)")
        if found < want:
            trial.problems.append(f"{dead_topic} holds {found} of the {want} poison records (value and source "
                                  f"topic/offset headers); it has {len(letters)} records")


class ApiTerm(Campaign):
    """SIGTERM the API while POST /api/scan/run is in flight, then start it again. Whether or not the
    client got an answer, every scan that exists anywhere (answered, in the API's database, on the
    ledger, in the read models) must be visible and end final and exact."""
    kind = "api_term"
    monitor = False
    DELAYS = (0.0, 0.05, 0.2, 0.5, 1.5)

    def run(self, trial: Trial) -> None:
        known = set(all_scan_ids(self.target))
        answer: dict = {}
        t0 = time.monotonic()

        def post():
            try:
                with self.target.client() as api:
                    r = api.post("/api/scan/run", json=self.workload.body(), timeout=60)
                answer.update(status=r.status_code, body=r.text)
            except httpx.HTTPError as exc:
                answer.update(error=repr(exc))

        poster = threading.Thread(target=post, daemon=True)
        poster.start()
        delay = self.DELAYS[(trial.index - 1) % len(self.DELAYS)]
        time.sleep(delay)
        code = self.target.kill("api", signal.SIGTERM, wait_s=60)
        poster.join(90)
        trial.notes.append(f"SIGTERM {delay}s after the POST; api exit code {code}; client: "
                           f"{ {k: str(v)[:200] for k, v in answer.items()} or 'no answer'}")
        if code is None:
            trial.problems.append("the API did not exit within 60 s of SIGTERM")
            self.target.kill("api")
        self.target.spawn("api")
        self.target.wait_healthy()
        answered = None
        if answer.get("status") == 200:
            answered = orjson.loads(answer["body"])["scan_id"]
            trial.scans["compliance"] = answered
        elif "status" in answer and answer["status"] not in (502, 503):
            trial.problems.append(f"POST answered {answer['status']}: {answer.get('body', '')[:300]}")
        # every scan that appeared must be visible and end final
        time.sleep(2)
        appeared = sorted(set(all_scan_ids(self.target)) - known - {answered})
        for i, s in enumerate(appeared):
            trial.scans[f"compliance:unanswered-{i}"] = s
        if appeared:
            trial.notes.append(f"scans that appeared without an answer to their client: {appeared}")
        if not trial.scans:
            trial.settled = True
            trial.notes.append("no scan was created")
            return
        self.settle(trial, t0)
        if trial.settled:
            with self.target.client() as api:
                listed = {i["id"] for i in _ok(api.get("/api/operations", params={"size": 1000}))["items"]}
            conn = connect_ro(self.target.db_url)
            try:
                for label, s in trial.scans.items():
                    row = conn.execute("SELECT operation_id FROM rm_scans WHERE scan_id = ?", (s,)).fetchone()
                    if row is None or row["operation_id"] not in listed:
                        trial.problems.append(f"{label} {s} is not in the operations list")
            finally:
                conn.close()
        self.check(trial, None)


def all_scan_ids(target) -> list[str]:
    """Every scan the system knows of anywhere: the API's database, the read models, the ledger."""
    ids = set()
    conn = connect_ro(target.db_url)
    try:
        ids |= {r[0] for r in conn.execute("SELECT scan_id FROM rm_scans")}
    finally:
        conn.close()
    settings = target.settings
    for _, _, _, headers, key, _ in read_topic(settings, settings.topics.commands):
        if header_type(headers) == c.RUN_SCAN and key:
            ids.add(key.decode())
    # a sync is a scan too but not one a trial starts; keep only compliance and monitor scans
    conn = connect_ro(target.db_url)
    try:
        catalogs = {r[0] for r in conn.execute("SELECT scan_id FROM rm_scans WHERE kind = 'catalog'")}
    finally:
        conn.close()
    return sorted(ids - catalogs)


class UpCtrlC(Campaign):
    """Ctrl-C (SIGINT to the whole process group) of `scanledger up` mid-scan, then `up` again on the
    same data dir. Even trials use the test broker (KAFKA_BOOTSTRAP_SERVERS), odd ones up's own."""
    kind = "up_ctrl_c"

    def __init__(self, bootstrap: str, tmp: Path, deadline_s: float = DEADLINE_S):
        super().__init__(bootstrap, tmp, deadline_s)
        self.variants: dict[str, tuple] = {}

    def setup(self) -> None:
        """Nothing yet: each variant's `up` starts (with its reference run) at its first trial."""

    def use(self, variant: str) -> None:
        """Switch to the `up` of this variant, starting it (workload and reference) the first time."""
        if self.variants.get(variant, (None, None))[1] is None:
            if variant in self.variants:  # an earlier attempt failed while preparing: start afresh
                self.variants.pop(variant)[0].stop()
            up = Up(self.tmp / f"up-{variant}", self.bootstrap if variant == "external" else None, self.rows)
            self.variants[variant] = (up, None, {}, {}, [])  # teardown stops it even if what follows fails
            up.start()
            self.target, self.reference, self.units, self.baseline_s = up, {}, {}, []
            self.workload = Workload.prepare(up, monitor=self.monitor, rows=self.rows)
            trial = self.unfaulted(0)
            if not trial.exact:
                raise AssertionError(f"the unfaulted reference run of up ({variant}) failed:\n{trial.summary()}")
            self.variants[variant] = (up, self.workload, self.reference, self.units, self.baseline_s)
        self.target, self.workload, self.reference, self.units, self.baseline_s = self.variants[variant]

    @staticmethod
    def variant_of(index: int) -> str:
        """Odd trials: up with its own local broker, as a user's first `up`; even: the test broker."""
        return ("external", "own broker")[index % 2]

    def run(self, trial: Trial) -> None:
        variant = self.variant_of(trial.index)
        self.use(variant)
        trial.notes.append(f"up with {'the test broker' if variant == 'external' else 'its own local broker'}")
        super().run(trial)

    def inject(self, trial: Trial) -> None:
        up = self.target
        trial.problems += up.ctrl_c()
        trial.notes.append(f"up exited with {up.exit_codes[-1] if up.exit_codes else '?'} on Ctrl-C")
        if not up.own_broker:
            # a clean stop leaves the consumer groups (the next start need not wait out a session timeout)
            settings = up.settings
            for group in (settings.streams_group, settings.projector_group):
                members = group_members(settings, group)
                if members:
                    trial.problems.append(f"after Ctrl-C, up exited but {group} still has {members} member(s): a "
                                          "process did not stop cleanly; up.log ends:\n"
                                          f"{tail(up.data_dir / 'up.log', 1500)}")
        up.start()

    def heal(self) -> None:
        with contextlib.suppress(Exception):
            self.target.ctrl_c()
            self.target.start()

    def all_baselines(self) -> list[float]:
        return [b for v in self.variants.values() for b in v[4]]

    def teardown(self) -> None:
        for up, *_ in self.variants.values():
            with contextlib.suppress(Exception):
                up.stop()


KINDS: dict[str, type[Campaign]] = {c.kind: c for c in (WorkerKill, UpCtrlC, ProjectorKill, ApiTerm, BrokerStop,
                                                        BrokerNodeKill, TwoWorkers, ScaleOut, Poison)}
