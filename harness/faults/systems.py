"""The systems under test: `Procs`, the worker, projector and API as separate processes on a Kafka
broker, which a fault can kill one by one (between faults the harness restarts, as `up`'s supervisor
would, a process that exited by itself); and `Up`, `scanledger up` in a session of its own as a user
runs it in a terminal, on the test broker or on its own local one."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from harness import databases
from harness.faults.knobs import ROWS, unit_records
from harness.faults.probes import kafka_settings, log_tail
from harness.system import ROOT, TOKEN, Running, free_port, kafka_env
from services.settings import Settings

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
                    "SCANLEDGER_DATASTORE_ROOT": str(self.datastore_root), "PYTHONFAULTHANDLER": "1",
                    **kafka_env(), **databases.for_system(), **env}
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, str] = {}
        self.own_env: dict[str, dict[str, str]] = {}  # a process's settings besides the system's
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

    def spawn(self, name: str, command: str | None = None, **env: str) -> subprocess.Popen:
        """Start one process: `command` is the CLI command (default: the name), e.g. spawn("worker2", "worker");
        `env`, settings of its own (kept for its restarts), e.g. another API's SCANLEDGER_PORT."""
        self.commands[name] = command or self.commands.get(name) or name
        self.own_env[name] = env or self.own_env.get(name, {})
        self.killed.discard(name)
        self._started[name] = time.monotonic()
        with open(self.data_dir / f"{name}.log", "ab") as out:
            out.write(f"\n=== {name} started at {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            self.processes[name] = subprocess.Popen([sys.executable, "-m", "cli.main", self.commands[name]],
                                                    env={**self.env, **self.own_env[name]}, cwd=ROOT, stdout=out,
                                                    stderr=subprocess.STDOUT)
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
                             f"its log ends:\n{log_tail(self.data_dir / f'{name}.log', 3000)}")
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
                   SCANLEDGER_UNIT_RECORDS=str(unit_records(rows)), SCANLEDGER_DATASTORE_ROOT=str(self.datastore_root),
                   **databases.for_system())
        if bootstrap:
            env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, SCANLEDGER_TOPIC_PREFIX=f"test-{uuid.uuid4().hex[:8]}",
                       **kafka_env())
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
