"""Fault trials on the real system, shared by tests/faults and bench/faults.py.

A *campaign* is one fault kind on one system: it starts the system (worker, projector and
API processes on a Kafka broker, or `scanledger up`), prepares a workload (an upload,
mapping and policy for a compliance scan; a datastore with monitors for a monitor scan),
runs it once with no fault (the reference, checked against the answer computed
independently in harness/data.py), then runs *trials*: the same workload again with one
fault injected mid-scan (after some units of the compliance scan reported, not all).

Each trial ends with every scan it started (or that appeared) compared with the reference:
the scan in its final state, the same counts (violations in total, per rule and per unit,
records, unit results and container statuses, monitor outcomes and anomalies), and replay
of the whole log into another database equal, table by table, to the live read models.
A trial is *settled* when every scan reached a final state before the deadline,
*stalled* when one did not, *exact* when it settled and nothing differed. The time to
settle runs from the POST of the scans to the last one final.

Nothing here waits without a deadline: a stuck scan ends the trial as stalled, with the
scan's unit states, the consumer lag and the worker's log tail in the report. Between faults
the harness stands in for `up`'s supervisor: a process that exits by itself is started again
(after a backoff) and the trial notes it; where nothing may stop (poison records) it is a
failure.

    pytest tests/faults                        # every kind, as CI runs it (part of `pytest`)
    pytest tests/faults -q -k worker_kill      # one kind
    python -m bench.faults --trials 10 --kinds all,worker_kill:50

Knobs (environment): SCANLEDGER_FAULT_ROWS (records of the compliance scan, default 60000),
SCANLEDGER_FAULT_UNIT_RECORDS (default ROWS / 5: 10 units), SCANLEDGER_FAULT_HEAVY_RULES
(extra rules that flag every record, default 0), SCANLEDGER_FAULT_DEADLINE_S (default 180),
SCANLEDGER_FAULT_VERBOSE=1 (each trial's summary on stderr as it ends).
"""
from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import httpx
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from harness import data
from harness.system import ROOT, TOKEN, Running, free_port
from services.domain import contracts as c
from services.domain.envelope import header_type
from services.settings import Settings, Topics

# --------------------------------------------------------------------------- knobs

ROWS = int(os.environ.get("SCANLEDGER_FAULT_ROWS", "60000"))
# Two rule groups (by account; by Txn ID for the duplicate rule), each split into
# ROWS / UNIT_RECORDS units: 10 units by default.
UNIT_RECORDS = int(os.environ.get("SCANLEDGER_FAULT_UNIT_RECORDS", str(max(1, ROWS // 5))))
# How long a trial's scans may take to reach a final state after the POST (a deadline, not
# an expectation: a healthy trial settles in seconds; a stuck scan fails the trial after it).
# The product's own bounds are far shorter: a stalled worker exits after 30 s, a silent unit is
# re-offered after 60 s.
DEADLINE_S = float(os.environ.get("SCANLEDGER_FAULT_DEADLINE_S", "180"))
SEED = 4242
FINAL = ("completed", "failed", "aborted")
MONITOR_ROWS = 40000
MONITOR_ASSETS = 4
# Extra rules that flag every record (one violation per record each): a heavier violation
# stream, closer to the 300k-record scan with 200k violations (bench: more load).
HEAVY_RULES = int(os.environ.get("SCANLEDGER_FAULT_HEAVY_RULES", "0"))


def policy_rules(heavy: int) -> list[dict]:
    return [*data.RULES, *({"id": f"all{i}", "name": f"Every record {i}", "type": "threshold", "severity": "low",
                            "params": {"field": "amount", "op": "gt", "value": -1}} for i in range(heavy))]


def code_version() -> str:
    """A digest of the product's source: a campaign's reference holds only for the code it ran on
    (other engineers may be changing the work tree while a long benchmark runs)."""
    import hashlib

    digest = hashlib.sha1()
    for package in ("services", "streams", "projections", "api"):
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def unit_records(rows: int) -> int:
    """SCANLEDGER_UNIT_RECORDS for a compliance scan of `rows` records: 10 units either way."""
    return UNIT_RECORDS if rows == ROWS else max(1, rows // 5)

# --------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    if os.environ.get("SCANLEDGER_FAULT_VERBOSE"):
        print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tail(path: Path, chars: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def log_tail(path: Path, chars: int = 4000) -> str:
    """The end of a process log without librdkafka's connection chatter and Faust's one-character
    traceback lines (a broker that is down on purpose fills logs with both)."""
    keep = [line for line in tail(path, 40 * chars).splitlines()
            if "rdkafka#" not in line and not re.search(r"\[WARNING\] .{0,3}$", line)]
    return "\n".join(keep)[-chars:]


def kafka_settings(env: dict) -> Settings:
    return Settings(data_dir=Path(env["SCANLEDGER_DATA_DIR"]),
                    kafka_bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
                    broker_port=int(env.get("SCANLEDGER_BROKER_PORT") or 9092),
                    topics=Topics(env.get("SCANLEDGER_TOPIC_PREFIX") or "scanledger"))


def all_topics(settings: Settings) -> list[str]:
    t = settings.topics
    return [t.commands, t.scan_events, t.work, t.violations]


# The harness's own Kafka clients say nothing: a broker the test stopped on purpose is not news.
QUIET = {"log_level": 0, "log.connection.close": False}


def _consumer(settings: Settings, **extra) -> Consumer:
    return Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"faults-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "enable.partition.eof": False, "auto.offset.reset": "earliest",
                     "fetch.wait.max.ms": 20, **QUIET, **extra})


def partitions(settings: Settings, topic: str) -> list[int]:
    consumer = _consumer(settings)
    try:
        return sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()


def watermarks(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = _consumer(settings)
    try:
        metadata = consumer.list_topics(timeout=10)
        out = {}
        for topic in topics:
            if topic not in metadata.topics:
                continue
            for p in metadata.topics[topic].partitions:
                out[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, timeout_s: float = 60):
    """Every record of a topic up to its current end: (partition, offset, timestamp_ms, headers, key, value)."""
    ends = {p: h for (t, p), h in watermarks(settings, [topic]).items() if h > 0}
    out = []
    if not ends:
        return out
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout_s
        while any(position[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.2):
                if m.error():
                    continue
                position[m.partition()] = m.offset() + 1
                if m.offset() < ends[m.partition()]:
                    out.append((m.partition(), m.offset(), m.timestamp()[1], m.headers() or [], m.key(), m.value()))
    finally:
        consumer.close()
    return out


def streams_lag(settings: Settings) -> str:
    """Committed offsets of the streams group against the end of each topic, where they differ."""
    topics = [settings.topics.commands, settings.topics.scan_events, settings.topics.work]
    try:
        ends = watermarks(settings, topics)
        consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.streams_group,
                             "enable.auto.commit": False, **QUIET})
        try:
            committed = consumer.committed([TopicPartition(t, p) for (t, p) in ends], timeout=10)
        finally:
            consumer.close()
        lines = []
        for tp in committed:
            end = ends[(tp.topic, tp.partition)]
            if end > max(tp.offset, 0):
                committed = tp.offset if tp.offset >= 0 else "none"
                lines.append(f"{tp.topic}[{tp.partition}] committed={committed} end={end}")
        members = ""
        with contextlib.suppress(Exception):
            admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **QUIET})
            desc = admin.describe_consumer_groups([settings.streams_group])[settings.streams_group].result(timeout=5)
            members = f"group {settings.streams_group}: state={desc.state} members={len(desc.members)}\n"
        return members + ("\n".join(lines) or "no lag")
    except Exception as exc:  # the report must not hide the failure it reports
        return f"(lag unavailable: {exc})"


def connect_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def projector_lag(settings: Settings, db_path: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """(stored next offset, end) of every event partition the projector has not caught up with."""
    ends = watermarks(settings, [settings.topics.scan_events, settings.topics.violations])
    conn = connect_ro(db_path)
    try:
        stored = {(r["topic"], r["partition"]): r["next_offset"]
                  for r in conn.execute("SELECT topic, partition, next_offset FROM projector_offsets")}
    finally:
        conn.close()
    return {tp: (stored.get(tp, 0), end) for tp, end in ends.items() if stored.get(tp, 0) < end}


# --------------------------------------------------------------------------- the systems under test


class Procs(Running):
    """Worker, projector and API as separate processes over one data dir and topic prefix (the
    processes `scanledger up` runs), which a fault can kill one by one. Between faults the
    harness stands in for up's supervisor: `supervise()` restarts a process that exited by
    itself, and says so."""

    NAMES = ("worker", "projector", "api")

    def __init__(self, bootstrap: str, data_dir: Path, rows: int = ROWS, **env: str):
        super().__init__(data_dir)
        # beside the data dir, not in it: the system refuses a datastore inside its own data
        self.datastore_root = data_dir.with_name(data_dir.name + "-datastores")
        self.datastore_root.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SCANLEDGER_DATA_DIR": str(data_dir),
                    "SCANLEDGER_TOPIC_PREFIX": f"test-{uuid.uuid4().hex[:8]}", "SCANLEDGER_ADMIN_TOKEN": TOKEN,
                    "SCANLEDGER_PORT": str(self.port), "SCANLEDGER_UNIT_RECORDS": str(unit_records(rows)),
                    "SCANLEDGER_DATASTORE_ROOT": str(self.datastore_root), "PYTHONFAULTHANDLER": "1", **env}
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, str] = {}
        self.killed: set[str] = set()  # processes a fault stopped on purpose
        self._backoff: dict[str, float] = {}
        self._restart_at: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self.stop_problems: list[str] = []

    @property
    def settings(self) -> Settings:
        return kafka_settings(self.env)

    def start(self) -> Procs:
        for name in self.NAMES:
            self.spawn(name)
        self.wait_healthy()
        return self

    def spawn(self, name: str, command: str | None = None) -> subprocess.Popen:
        """Start one process: `command` is the CLI command (default: the name), e.g. spawn("worker2", "worker")."""
        self.commands[name] = command or self.commands.get(name) or name
        self.killed.discard(name)
        self._started[name] = time.monotonic()
        with open(self.data_dir / f"{name}.log", "ab") as out:
            out.write(f"\n=== {name} started at {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            self.processes[name] = subprocess.Popen([sys.executable, "-m", "cli.main", self.commands[name]],
                                                    env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        return self.processes[name]

    def kill(self, name: str, sig: int = signal.SIGKILL, wait_s: float = 60) -> int | None:
        """Signal one process (SIGKILL by default: nothing of it runs any more, as in a crash) and wait for
        it to exit: its exit code, or None if it still runs after wait_s."""
        self.killed.add(name)
        process = self.processes[name]
        process.send_signal(sig)
        try:
            return process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    def exited(self) -> dict[str, int]:
        """Processes that exited by themselves (not stopped by a fault)."""
        return {n: p.returncode for n, p in self.processes.items() if p.poll() is not None and n not in self.killed}

    def unrecoverable(self) -> dict[str, int]:
        return {}  # supervise() restarts whatever exits

    def supervise(self) -> list[str]:
        """Start again a process that exited by itself, as `up` would (after 1 s, doubling to 30 s for one
        that keeps exiting, back to 1 s once it ran for a minute); each exit, with the end of its log."""
        notes, now = [], time.monotonic()
        for name, code in self.exited().items():
            if name not in self._restart_at:
                if now - self._started.get(name, now) > 60:
                    self._backoff[name] = 1.0
                delay = self._backoff.get(name, 1.0)
                self._restart_at[name], self._backoff[name] = now + delay, min(2 * delay, 30.0)
                notes.append(f"{name} exited by itself with code {code} (started again after {delay:.0f} s); "
                             f"its log ends:\n{log_tail(self.data_dir / f'{name}.log', 1500)}")
            elif now >= self._restart_at[name]:
                del self._restart_at[name]
                self.spawn(name)
        return notes

    def stop(self) -> None:
        """SIGTERM every process, SIGKILL one still running 30 s later (noted in stop_problems)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 30
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop_problems.append(self._abort(name))
        self.processes = {}

    def _abort(self, name: str) -> str:
        """A process that ignored SIGTERM: SIGABRT first, so faulthandler (PYTHONFAULTHANDLER) writes
        every thread's stack to its log, then SIGKILL; what its log says."""
        process = self.processes[name]
        process.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.poll() is None:
            process.kill()
            process.wait()
        text = log_tail(self.data_dir / f"{name}.log", 5000)
        return f"{name} still running 30 s after SIGTERM; aborted. Its log ends:\n{text}"

    def stop_cleanly(self, name: str, timeout_s: float = 30) -> str | None:
        """SIGTERM one process, as a supervisor's stop does: None if it exits by itself within timeout_s,
        else why not (with its threads' stacks)."""
        self.killed.add(name)
        self.processes[name].terminate()
        try:
            self.processes[name].wait(timeout=timeout_s)
            return None
        except subprocess.TimeoutExpired:
            return self._abort(name)
        self.killed = set()
        self._backoff, self._restart_at = {}, {}

    def worker_log(self) -> str:
        return "\n".join(f"--- {n}.log (tail)\n{log_tail(self.data_dir / f'{n}.log')}"
                         for n in dict.fromkeys(["worker", *self.processes]) if n.startswith("worker"))

    def logs(self) -> str:
        return "\n".join(f"--- {n}.log (tail)\n{log_tail(self.data_dir / f'{n}.log', 3000)}"
                         for n in dict.fromkeys([*self.NAMES, *self.processes]))


class Up(Running):
    """`scanledger up` in a session of its own, as a user runs it in a terminal.

    With `bootstrap` it uses that Kafka (KAFKA_BOOTSTRAP_SERVERS, on a topic prefix of its
    own); without, it runs its own local broker in the data dir, on the default topic names,
    as a user's first `up` does.
    """

    def __init__(self, data_dir: Path, bootstrap: str | None = None, rows: int = ROWS):
        super().__init__(data_dir)
        # beside the data dir, not in it: the system refuses a datastore inside its own data
        self.datastore_root = data_dir.with_name(data_dir.name + "-datastores")
        self.datastore_root.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCANLEDGER_", "KAFKA_BOOTSTRAP"))}
        env.update(SCANLEDGER_DATA_DIR=str(data_dir), SCANLEDGER_PORT=str(self.port), SCANLEDGER_ADMIN_TOKEN=TOKEN,
                   SCANLEDGER_UNIT_RECORDS=str(unit_records(rows)), SCANLEDGER_DATASTORE_ROOT=str(self.datastore_root))
        if bootstrap:
            env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, SCANLEDGER_TOPIC_PREFIX=f"test-{uuid.uuid4().hex[:8]}")
        else:
            env["SCANLEDGER_BROKER_PORT"] = str(free_port(2))
        self.env = env
        self.own_broker = not bootstrap
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def settings(self) -> Settings:
        return kafka_settings(self.env)

    def start(self, timeout_s: float = 240) -> Up:
        self.starts += 1
        with open(self.data_dir / "up.log", "ab") as out:
            out.write(f"\n=== up #{self.starts} at {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            self.process = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], env=self.env, cwd=ROOT,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"up exited with {self.process.returncode} while starting:\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.3)
        raise RuntimeError(f"up not healthy after {timeout_s}s:\n{self.logs()}")

    def ctrl_c(self, timeout_s: float = 90) -> list[str]:
        """SIGINT to up's whole process group, as a terminal's Ctrl-C; what went wrong stopping, if anything."""
        problems = []
        pgid = self.process.pid
        self.exit_codes = getattr(self, "exit_codes", [])
        os.killpg(pgid, signal.SIGINT)
        try:
            self.exit_codes.append(self.process.wait(timeout=timeout_s))
        except subprocess.TimeoutExpired:
            problems.append(f"up still running {timeout_s:.0f}s after Ctrl-C; killed")
        deadline = time.monotonic() + 30
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pgid):
            problems.append(f"processes of up's group still running after up exited: {_group_members(pgid)}; killed")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return problems

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.ctrl_c()
        if self.own_broker:  # up stops its broker itself; this is for an up that was killed
            from cli import localbroker

            with contextlib.suppress(Exception):
                localbroker.stop(Settings(data_dir=self.data_dir, broker_port=int(self.env["SCANLEDGER_BROKER_PORT"])))

    def worker_log(self) -> str:
        return f"--- logs/worker.log (tail)\n{log_tail(self.data_dir / 'logs' / 'worker.log')}"

    def logs(self) -> str:
        names = ["up.log", "logs/worker.log", "logs/projector.log", "logs/api.log"]
        return "\n".join(f"--- {n} (tail)\n{log_tail(self.data_dir / n, 3000)}" for n in names)

    def exited(self) -> dict[str, int]:
        return {"up": self.process.returncode} if self.process and self.process.poll() is not None else {}

    def supervise(self) -> list[str]:
        return []  # up supervises its children itself

    def unrecoverable(self) -> dict[str, int]:
        return self.exited()  # if up exits, nothing restarts it


def _group_members(pgid: int) -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = (proc / "stat").read_text().rsplit(")", 1)[-1].split()
            if int(stat[2]) == pgid and stat[0] not in ("Z", "X"):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                out.append(f"{proc.name}: {cmdline[:120]}")
    return out


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


# --------------------------------------------------------------------------- the workload


@lru_cache(maxsize=2)
def compliance_rows(n: int = ROWS) -> tuple[list[dict], bytes]:
    rows = data.transactions(n, seed=SEED)
    return rows, data.to_csv(rows)


def write_lake(root: Path) -> Path:
    """Files for the monitor scan: MONITOR_ASSETS CSVs of MONITOR_ROWS rows and one unreadable file."""
    lake = root / "faults-lake"
    if lake.exists():
        return lake
    lake.mkdir(parents=True)
    rnd = random.Random(SEED)
    for a in range(MONITOR_ASSETS):
        lines = ["id,email,amount,country,created"]
        for i in range(MONITOR_ROWS):
            email = "" if rnd.random() < 0.02 else f"user{rnd.randrange(10**6)}@example.com"
            if rnd.random() < 0.01:
                email = "not-an-email"
            ident = i if rnd.random() > 0.001 else max(0, i - 1)
            lines.append(f"{ident},{email},{round(rnd.uniform(-5, 1100), 2)},{rnd.choice(['US', 'DE', 'FR', 'XX'])},"
                         f"2024-0{1 + a}-{1 + i % 28:02d}T10:00:00Z")
        (lake / f"accounts_{a}.csv").write_text("\n".join(lines) + "\n")
    (lake / "broken.csv").write_text('a,b\n1,2\n3,4,5,6\n"unclosed\n')
    return lake


def monitors_for(name: str) -> list[dict]:
    if name == "broken.csv":
        return [{"name": "Has rows", "type": "record_count", "params": {"min": 1}}]
    return [
        {"name": "Rows", "type": "record_count", "params": {"min": 1, "max": MONITOR_ROWS - 1}},
        {"name": "Email nulls", "type": "null_rate", "params": {"column": "email", "max": 0.01}, "severity": "high"},
        {"name": "Unique ids", "type": "uniqueness", "params": {"columns": ["id"]}},
        {"name": "Amount range", "type": "value_range", "params": {"column": "amount", "min": 0, "max": 1000}},
        {"name": "Countries", "type": "allowed_values", "params": {"column": "country", "values": ["US", "DE", "FR"]}},
        {"name": "Email pattern", "type": "pattern", "params": {"column": "email", "regex": r"[^@]+@[^@]+\.[a-z]+"}},
        {"name": "Schema", "type": "schema", "params": {"columns": {"id": "integer", "amount": "float",
                                                                     "email": "string", "missing": "string"}}},
        {"name": "No such column", "type": "null_rate", "params": {"column": "nope", "max": 0.5}},
    ]


def _ok(r: httpx.Response, *codes: int) -> dict:
    assert r.status_code in (codes or (200, 201)), f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json()


@dataclass
class Workload:
    """What every run of a campaign scans: one compliance scan and (optionally) one monitor scan."""
    upload_id: str
    mapping_id: str
    policy_id: str
    monitor: bool
    rows: int
    heavy: int

    @classmethod
    def prepare(cls, target, monitor: bool = True, rows: int = ROWS, heavy: int = HEAVY_RULES) -> Workload:
        _, csv = compliance_rows(rows)
        with target.client() as api:
            up = _ok(api.post("/api/upload", files={"file": ("faults.csv", csv, "text/csv")}), 201)
            mapping = _ok(api.post("/api/mapping/confirm", json={"upload_id": up["upload_id"], "mapping": data.MAPPING,
                                                                 "temporal_scale": "daily"}), 201)
            policy = _ok(api.post("/api/policies", json={"name": "faults", "rules": policy_rules(heavy)}), 201)
            if monitor:
                write_lake(target.datastore_root)
                store = _ok(api.post("/api/datastores", json={"name": "Faults lake", "type": "local_dir",
                                                               "path": "faults-lake"}), 201)
                sync = _ok(api.post(f"/api/datastores/{store['id']}/sync"), 202)
                _wait_final(target, [sync["scan_id"]], time.monotonic() + 120)
                assets = _ok(api.get("/api/assets", params={"datastore": store["id"]}))["items"]
                for asset in assets:
                    for m in monitors_for(asset["name"]):
                        _ok(api.post(f"/api/assets/{asset['id']}/monitors", json=m), 201)
        return cls(up["upload_id"], mapping["mapping_id"], policy["id"], monitor, rows, heavy)

    def body(self) -> dict:
        return {"policy_id": self.policy_id, "upload_id": self.upload_id, "mapping_id": self.mapping_id}

    def start(self, api: httpx.Client) -> dict[str, str]:
        """POST the scans (the monitor scan first: it is the smaller); {"compliance": id, "monitor": id}."""
        scans = {}
        if self.monitor:
            scans["monitor"] = _ok(api.post("/api/scan/run"), 202)["data"]["executionId"]
        r = api.post("/api/scan/run", json=self.body(), headers={"Prefer": "respond-async"})
        scans["compliance"] = _ok(r, 200)["scan_id"]
        return scans


# --------------------------------------------------------------------------- waiting and comparing


def scan_status(api: httpx.Client, scan_id: str) -> str | None:
    """The scan's status as GET /api/scan/{id} shows it (final only once every violation is in), or
    None when the API does not answer or does not know the scan."""
    try:
        r = api.get(f"/api/scan/{scan_id}", timeout=10)
    except httpx.HTTPError:
        return None
    return r.json()["status"] if r.status_code == 200 else None


def _wait_final(target, scan_ids, deadline: float, exited: dict | None = None,
                restarts: list | None = None) -> dict[str, float | None]:
    """monotonic time each scan was first seen final, None if not by the deadline. Meanwhile a process
    that exits by itself is started again (noted in `restarts`); if nothing can restart it (`up`
    itself exited), gives up at once, noting it in `exited`."""
    done: dict[str, float | None] = dict.fromkeys(scan_ids)
    with target.client() as api:
        while True:
            for s in [s for s, t in done.items() if t is None]:
                if scan_status(api, s) in FINAL:
                    done[s] = time.monotonic()
            if all(t is not None for t in done.values()) or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)
            if restarts is not None:
                restarts += target.supervise()
            if exited is not None and (gone := target.unrecoverable()):
                time.sleep(1)  # its last words reach the log
                exited.update(gone)
                return done


def normalize(value, scan_id: str):
    if isinstance(value, str):
        return value.replace(scan_id, "<scan>")
    if isinstance(value, Counter):
        return Counter({tuple(normalize(list(k), scan_id)): n for k, n in value.items()})
    if isinstance(value, dict):
        return {k: normalize(v, scan_id) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v, scan_id) for v in value]
    return value


SCAN_VIEW = ("status", "violation_count", "compliance_score", "rules_processed", "rules_total", "record_count",
             "error", "pii_findings", "mapping_config", "temporal_scale")
RM_SCAN = ("kind", "status", "record_total", "record_count", "rules_total", "rules_processed", "rule_evals_total",
           "rule_evals_done", "units_total", "violation_count", "violations_seen", "compliance_score", "error",
           "finalized")
RM_UNIT = ("idx", "record_count", "rules_total", "rules_done", "status", "violation_count", "error", "container_id",
           "container_name", "container_type", "records_processed")
VIOLATION = ("rule_id", "rule_name", "rule_type", "severity", "account", "record_index", "record_key", "value",
             "window", "signature", "container_id", "observed")


def fingerprint(target, scan_id: str) -> dict:
    """Everything about a scan that an unfaulted run of the same scan must equal, through the API and
    the read models, with the scan's own id taken out (timestamps and durations are left out)."""
    out: dict = {}
    with target.client() as api:
        view = _ok(api.get(f"/api/scan/{scan_id}"))
        out["view"] = {k: view.get(k) for k in SCAN_VIEW}
        out["score_history"] = [h["score"] for h in view.get("score_history") or []]
        conn = connect_ro(target.db_path)
        try:
            row = conn.execute("SELECT * FROM rm_scans WHERE scan_id = ?", (scan_id,)).fetchone()
            out["rm_scan"] = {k: row[k] for k in RM_SCAN} if row else None
            op = row["operation_id"] if row else None
            out["units"] = [tuple(u[k] for k in RM_UNIT) for u in conn.execute(
                f"SELECT {', '.join(RM_UNIT)} FROM rm_units WHERE scan_id = ? ORDER BY idx", (scan_id,))]
            out["monitors"] = sorted(tuple(m) for m in conn.execute(
                "SELECT u.idx, m.monitor_id, m.position, m.monitor_name, m.stage, m.error, m.anomalies"
                " FROM rm_unit_monitors m JOIN rm_units u ON u.unit_id = m.unit_id WHERE u.scan_id = ?", (scan_id,)))
            violations = Counter(tuple(v) for v in conn.execute(
                f"SELECT {', '.join(VIOLATION)} FROM rm_violations WHERE scan_id = ?", (scan_id,)))
        finally:
            conn.close()
        out["violations"] = violations
        out["per_rule"] = dict(sorted(Counter(v[0] for v in violations.elements()).items()))
        out["per_rule_api"] = {}
        for rule in sorted(set(out["per_rule"]) | {r["id"] for r in data.RULES if row and row["kind"] == "compliance"}):
            page = _ok(api.get(f"/api/scan/{scan_id}/violations", params={"rule_id": rule, "size": 1}))
            out["per_rule_api"][rule] = page["total"]
        if op is not None:
            item = _ok(api.get(f"/api/operations/{op}"))
            out["operation"] = {"result": item["result"], "message": item["message"], "status": item["status"]}
            out["containers"] = [{k: v for k, v in ct.items() if k not in ("start_time", "end_time")}
                                 for ct in _ok(api.get(f"/api/operations/{op}/containers"))["items"]]
        if row is not None and row["kind"] == "monitor":
            out["execution"] = _ok(api.get(f"/api/scan/status/{scan_id}"))["data"]["status"]
    return normalize(out, scan_id)


def differences(reference: dict, got: dict) -> list[str]:
    diffs = []
    for key in reference.keys() | got.keys():
        want, have = reference.get(key), got.get(key)
        if want == have:
            continue
        if key == "violations":
            missing, extra = want - have, have - want
            diffs.append(f"violations: {sum(missing.values())} missing (e.g. {list(missing)[:3]}), "
                         f"{sum(extra.values())} extra or duplicated (e.g. {list(extra)[:3]})")
        elif isinstance(want, dict) and isinstance(have, dict):
            sub = {k: (want.get(k), have.get(k)) for k in want.keys() | have.keys() if want.get(k) != have.get(k)}
            diffs.append(f"{key} (reference, trial): {sub}")
        elif isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
            sub = [(w, h) for w, h in zip(want, have, strict=True) if w != h]
            diffs.append(f"{key} differ at {len(sub)} of {len(want)} (reference, trial): {sub[:4]}")
        else:
            diffs.append(f"{key}: reference {str(want)[:400]} / trial {str(have)[:400]}")
    return diffs


def oracle_problems(fp: dict, n: int = ROWS, heavy: int = 0) -> list[str]:
    """The compliance reference against the answer computed from the documented rule semantics."""
    rows, _ = compliance_rows(n)
    want = {rule: len(sigs) for rule, sigs in data.expected(rows).items()}
    want |= {f"all{i}": len(rows) for i in range(heavy)}
    problems = []
    if fp["view"]["status"] != "completed":
        problems.append(f"reference compliance scan is {fp['view']['status']}")
    if fp["per_rule_api"] != want:
        problems.append(f"reference per-rule counts {fp['per_rule_api']} != expected {want}")
    if fp["view"]["record_count"] != len(rows):
        problems.append(f"reference record_count {fp['view']['record_count']} != {len(rows)}")
    return problems


def replay_problems(target, tmp: Path, attempts: int = 5) -> list[str]:
    """Replay the whole log into another database and compare every read-model table with the live one.

    Waits for the live projector to reach the end of the log first, and replays again if the log
    grew meanwhile (a scan of an earlier trial still finishing)."""
    from services.stores.read_models import TABLES

    settings = target.settings
    for _attempt in range(attempts):
        deadline = time.monotonic() + 120
        while (lag := projector_lag(settings, target.db_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if lag:
            return [f"the live projector did not reach the end of the log in 120 s: (stored, end) {lag}"]
        before = watermarks(settings, [settings.topics.scan_events, settings.topics.violations])
        into = tmp / f"replay-{uuid.uuid4().hex[:8]}.db"
        try:
            target.cli("replay", "--into", f"sqlite:///{into}", timeout=300)
        except subprocess.CalledProcessError as exc:
            return [f"replay exited with {exc.returncode}: {(exc.stderr or '')[-2000:]}"]
        except subprocess.TimeoutExpired:
            return ["replay did not finish in 300 s"]
        if watermarks(settings, [settings.topics.scan_events, settings.topics.violations]) != before:
            continue
        deadline = time.monotonic() + 60
        while projector_lag(settings, target.db_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        problems = []
        live, replayed = connect_ro(target.db_path), connect_ro(into)
        try:
            for table in TABLES:
                if table == "projector_offsets":
                    continue
                a = sorted(map(tuple, live.execute(f"SELECT * FROM {table}")), key=repr)
                b = sorted(map(tuple, replayed.execute(f"SELECT * FROM {table}")), key=repr)
                if a != b:
                    sa, sb = set(a), set(b)
                    problems.append(f"replay differs from live in {table}: {len(a)} live rows, {len(b)} replayed; "
                                    f"only live e.g. {list(sa - sb)[:2]}; only replayed e.g. {list(sb - sa)[:2]}")
        finally:
            live.close()
            replayed.close()
            for leftover in (into, into.with_name(into.name + "-wal"), into.with_name(into.name + "-shm")):
                leftover.unlink(missing_ok=True)
        return problems
    return [f"the log kept growing during {attempts} replays"]


def unit_reports(settings: Settings, scan_id: str) -> dict[str, int]:
    """unit id -> timestamp (ms) of its first report (completed or failed) on the ledger."""
    out: dict[str, int] = {}
    for _, _, ts, headers, key, value in read_topic(settings, settings.topics.scan_events):
        if key != scan_id.encode() or header_type(headers) not in (c.UNIT_COMPLETED, c.UNIT_FAILED):
            continue
        with contextlib.suppress(Exception):
            unit = orjson.loads(value)["data"]["unit_id"]
            out[unit] = min(ts, out.get(unit, ts))
    return out


class UnitWatch:
    """Follows unit reports of the scans on the ledger as they are written, to time a fault."""

    def __init__(self, settings: Settings):
        self.settings = settings
        topic = settings.topics.scan_events
        self._consumer = _consumer(settings, **{"fetch.wait.max.ms": 5})
        ends = watermarks(settings, [topic])
        self._consumer.assign([TopicPartition(topic, p, off) for (_, p), off in ends.items()])
        # one round trip, so the consumer is connected and fetching before the scans start
        self._consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        self._done: dict[str, set[str]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._consumer.consume(100, 0.005)
            except Exception:
                time.sleep(0.1)
                continue
            for m in batch:
                if m.error() or header_type(m.headers()) not in (c.UNIT_COMPLETED, c.UNIT_FAILED):
                    continue
                with contextlib.suppress(Exception):
                    d = orjson.loads(m.value())["data"]
                    with self._cond:
                        self._done.setdefault(d["scan_id"], set()).add(d["unit_id"])
                        self._cond.notify_all()

    def wait(self, scan_id: str, count: int, timeout_s: float) -> int:
        """Block until `count` units of the scan reported (or the timeout); how many had."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._done.get(scan_id, ())) < count and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return len(self._done.get(scan_id, ()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


# --------------------------------------------------------------------------- trials


@dataclass(repr=False)
class Trial:
    kind: str
    index: int
    scans: dict[str, str] = field(default_factory=dict)  # label -> scan id
    settled: bool = False
    exact: bool = False
    stalled: bool = False
    landed: bool | None = None  # the fault came after some units of the compliance scan reported, not all
    settle_s: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report: str = ""
    attempt: int = 0
    restarts: list[str] = field(default_factory=list)  # processes that exited by themselves and were restarted

    def __repr__(self) -> str:
        return f"<Trial {self.kind} #{self.index}: exact={self.exact} stalled={self.stalled}>"

    def summary(self) -> str:
        state = ("exact" if self.exact else "STALLED" if self.stalled
                 else "settled, NOT exact" if self.settled else "failed")
        settle = f"{self.settle_s:.1f}s" if self.settle_s is not None else "-"
        head = (f"{self.kind} #{self.index}: {state}; settle {settle}; landed mid-scan: {self.landed}; "
                f"scans {self.scans}")
        lines = [head, *(f"  note: {n}" for n in self.notes), *(f"  PROBLEM: {p}" for p in self.problems)]
        if self.report:
            lines.append(self.report)
        return "\n".join(lines)


class Campaign:
    """One fault kind on one system: setup() (system, workload, reference), trial(i), teardown()."""

    kind = "none"
    monitor = True
    rows = ROWS  # records of the compliance scan
    restarts_allowed = True  # a process may exit by itself (a watchdog) if it is restarted and all ends exact

    def __init__(self, bootstrap: str, tmp: Path, deadline_s: float = DEADLINE_S):
        self.bootstrap = bootstrap
        self.tmp = tmp
        self.deadline_s = deadline_s
        self.target = None
        self.workload: Workload | None = None
        self.reference: dict[str, dict] = {}
        self.units: dict[str, int] = {}
        self.baseline_s: list[float] = []

    # -- system
    def make_target(self):
        return Procs(self.bootstrap, self.tmp / f"{self.kind}-system", rows=self.rows).start()

    def setup(self) -> None:
        self.target = self.make_target()
        self.workload = Workload.prepare(self.target, monitor=self.monitor, rows=self.rows)
        trial = self.unfaulted(0)
        if not trial.exact:
            raise AssertionError(f"the unfaulted reference run of {self.kind} failed:\n{trial.summary()}")

    def teardown(self) -> None:
        if self.target is not None:
            self.target.stop()

    # -- runs
    def unfaulted(self, index: int) -> Trial:
        """A run with no fault: the first is the reference (checked against the independent answer)."""
        trial = Trial("none", index)
        t0 = time.monotonic()
        with self.target.client() as api:
            trial.scans = self.workload.start(api)
        self.settle(trial, t0)
        if not trial.settled:
            return trial
        fps = {label: fingerprint(self.target, s) for label, s in trial.scans.items()}
        if not self.reference:
            trial.problems += oracle_problems(fps["compliance"], self.workload.rows, self.workload.heavy)
            if not trial.problems:
                self.code = code_version()
                self.reference = fps
                self.units = {label: len(fp["units"]) for label, fp in fps.items()}
        else:
            for label, fp in fps.items():
                trial.problems += [f"{label}: {d}" for d in differences(self.reference[label], fp)]
        trial.problems += replay_problems(self.target, self.tmp)
        trial.exact = not trial.problems
        if trial.exact:
            self.baseline_s.append(trial.settle_s)
        return trial

    def kill_point(self, index: int, attempt: int = 0) -> int:
        """After how many reported units of the compliance scan the fault lands: spread over the first
        half of the scan, so it lands with units both done and to do (the first unit on a retry)."""
        n = self.units["compliance"]
        return 1 if attempt else 1 + (index * 3) % max(1, n // 2)

    def trial(self, index: int, attempts: int = 3) -> Trial:
        """One trial; if the fault came after every unit had reported (it missed the scan), again with
        the fault after the first unit. Every attempt's scans are checked all the same."""
        notes, problems = [], []
        for attempt in range(attempts):
            trial = Trial(self.kind, index)
            trial.attempt = attempt
            try:
                self.run(trial)
            except Exception as exc:  # a fault that could not even be injected is a failed trial, with why
                import traceback

                trial.problems.append(f"trial aborted: {exc!r}\n{traceback.format_exc()[-3000:]}")
            trial.exact = trial.settled and not trial.problems
            log(trial.summary())
            if trial.landed is not False or not trial.exact or attempt == attempts - 1:
                break
            notes.append(f"attempt {attempt + 1} missed the scan (every unit had reported): {trial.notes}")
            problems += trial.problems
        trial.notes[:0] = notes
        trial.problems[:0] = problems
        trial.exact = trial.settled and not trial.problems
        return trial

    def run(self, trial: Trial) -> None:
        """Start the scans, inject the fault when `kill_point` units reported, settle, check."""
        watch = UnitWatch(self.target.settings)
        try:
            time.sleep(0.3)
            t0 = time.monotonic()
            with self.target.client() as api:
                trial.scans = self.workload.start(api)
            k = self.kill_point(trial.index, trial.attempt)
            seen = watch.wait(trial.scans["compliance"], k, 120)
            if seen < k:
                trial.notes.append(f"only {seen} units reported before the fault (waited for {k})")
            fault_at = time.time()
            self.inject(trial)
        finally:
            watch.close()
        self.settle(trial, t0)
        self.check(trial, fault_at)

    def inject(self, trial: Trial) -> None:
        raise NotImplementedError

    def settle(self, trial: Trial, t0: float, extra: list[str] | None = None) -> None:
        deadline = t0 + self.deadline_s
        exited: dict = {}
        restarts: list[str] = []
        done = _wait_final(self.target, [*trial.scans.values(), *(extra or [])], deadline, exited, restarts)
        trial.restarts += restarts
        shown = restarts[:2] + ([f"... and {len(restarts) - 2} more exits"] if len(restarts) > 2 else [])
        if restarts and not self.restarts_allowed:
            trial.problems += [f"nothing may stop, but {r}" for r in shown]
        else:
            trial.notes += shown
        trial.settled = all(t is not None for t in done.values())
        trial.stalled = not trial.settled
        if trial.settled:
            trial.settle_s = max(done.values()) - t0
        else:
            stuck = [s for s, t in done.items() if t is None]
            if exited:
                trial.problems.append(f"{exited} exited by itself {time.monotonic() - t0:.0f}s after the POST "
                                      f"(exit codes), with scans not final: {stuck}")
                trial.report = self.stall_report(stuck) + "\n" + self.target.logs()
            else:
                trial.problems.append(f"not final {self.deadline_s:.0f}s after the POST: {stuck}")
                trial.report = self.stall_report(stuck)
            self.heal()

    def heal(self) -> None:
        """After a stall, restart every process so the next trial does not inherit it."""
        with contextlib.suppress(Exception):
            self.target.stop()
            self.target.start()

    def stall_report(self, scan_ids: list[str]) -> str:
        lines = []
        with contextlib.suppress(Exception):
            conn = connect_ro(self.target.db_path)
            try:
                for s in scan_ids:
                    row = conn.execute("SELECT kind, status, finalized, units_total, violations_seen, violation_count"
                                       " FROM rm_scans WHERE scan_id = ?", (s,)).fetchone()
                    lines.append(f"scan {s}: {dict(row) if row else 'not in the read model'}")
                    units = Counter(u["status"] for u in conn.execute(
                        "SELECT status FROM rm_units WHERE scan_id = ?", (s,)))
                    pending = [u["unit_id"] for u in conn.execute(
                        "SELECT unit_id FROM rm_units WHERE scan_id = ? AND status NOT IN ('completed', 'failed')",
                        (s,))]
                    lines.append(f"  units: {dict(units)}; not reported: {pending}")
            finally:
                conn.close()
        lines.append("streams group lag:\n" + streams_lag(self.target.settings))
        with contextlib.suppress(Exception):
            lines.append(f"projector lag (stored, end): {projector_lag(self.target.settings, self.target.db_path)}")
        lines.append(self.target.worker_log())
        return "\n".join(lines)

    def check(self, trial: Trial, fault_at: float | None) -> None:
        """Did the fault land mid-scan; compare every scan of the trial with the reference; replay."""
        if fault_at is not None and "compliance" in trial.scans:
            reports = unit_reports(self.target.settings, trial.scans["compliance"])
            before = sum(1 for ts in reports.values() if ts < fault_at * 1000)
            trial.landed = 0 < before < self.units["compliance"]
            spread = " ".join(f"{(ts / 1000 - fault_at):+.2f}" for ts in sorted(reports.values()))
            trial.notes.append(f"{before} of {self.units['compliance']} compliance units had reported when the fault "
                               f"came (unit reports on the ledger at {spread or 'none'} s from it)")
        if not trial.settled:
            return
        if getattr(self, "code", None) and (now := code_version()) != self.code:
            trial.problems.append(f"the product's code changed during the campaign ({self.code} -> {now}): the "
                                  "reference run no longer applies, so this trial proves nothing")
        for label, scan_id in trial.scans.items():
            ref_label = label.split(":")[0]
            trial.problems += [f"{label} {scan_id}: {d}"
                               for d in differences(self.reference[ref_label], fingerprint(self.target, scan_id))]
        trial.problems += replay_problems(self.target, self.tmp)


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
        wait_members(self.target.settings, self.target.settings.streams_group, 2)
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
        return Procs(self.broker.bootstrap_servers, self.tmp / f"{self.kind}-system", rows=self.rows).start()

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
            conn = connect_ro(self.target.db_path)
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
    conn = connect_ro(target.db_path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in ("rm_scans", "scan_requests"):
            if table in tables:
                ids |= {r[0] for r in conn.execute(f"SELECT scan_id FROM {table}")}
    finally:
        conn.close()
    settings = target.settings
    for _, _, _, headers, key, _ in read_topic(settings, settings.topics.commands):
        if header_type(headers) == c.RUN_SCAN and key:
            ids.add(key.decode())
    # a sync is a scan too but not one a trial starts; keep only compliance and monitor scans
    conn = connect_ro(target.db_path)
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
                                                        TwoWorkers, Poison)}


# --------------------------------------------------------------------------- for pytest


@contextlib.contextmanager
def campaign(kind: type[Campaign], kafka: str, tmp_path_factory):
    """A module's campaign: its system on the session's broker, its workload and reference run."""
    running = kind(kafka, tmp_path_factory.mktemp(kind.kind))
    try:
        running.setup()
        yield running
    finally:
        running.teardown()


def check(trial: Trial) -> None:
    """A trial passes only when every scan it started ended final and exactly equal to the reference,
    and replay equals live; the failure message has everything known about the trial."""
    assert trial.exact, "\n" + trial.summary()
