"""Starting the real system for end-to-end tests: a Kafka broker, worker, projector, API.

The broker is KAFKA_BOOTSTRAP_SERVERS when set, else apache/kafka in Docker with
SCANLEDGER_TEST_BROKER=testcontainers (harness/kafka_container.py), else the project's own local broker
(Apache Kafka jars on the JDK). The worker, projector and API run as the same processes `scanledger up`
starts, on a topic prefix of their own so test runs never see each other's messages.
"""
from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from harness import databases, kafka_container

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-admin-token"


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(count: int = 1) -> int:
    """A port p with p … p + count - 1 free, below the kernel's ephemeral range: a server the fault tests
    stop and start again gets its port back, which an outgoing connection's local port could otherwise
    take while it is down (a broker_stop trial once found its controller port taken)."""
    top = _ephemeral_low() - count
    for _ in range(200):
        port = random.randrange(20000, top)
        with contextlib.ExitStack() as held:
            try:
                for p in range(port, port + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", p))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no {count} free consecutive ports below {top}")


# The tests' own local broker: one node, or a cluster with SCANLEDGER_TEST_BROKER_NODES=3 (its topics
# then get 3 replicas, 2 in sync for a write: kafka_env()).
BROKER_NODES = int(os.environ.get("SCANLEDGER_TEST_BROKER_NODES") or 1)


def kafka_env() -> dict[str, str]:
    """What a system on the tests' broker sets for its topics (the replication of a cluster)."""
    return {"SCANLEDGER_REPLICATION_FACTOR": str(min(3, BROKER_NODES))} if BROKER_NODES > 1 else {}


class Broker:
    """Where the tests' Kafka is; stop() cleans up whatever start() began."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._stop = lambda: None
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")

    def start(self) -> str:
        if self.bootstrap:
            return self.bootstrap
        if kafka_container.selected():
            container = kafka_container.start()
            self._stop = container.stop
            self.bootstrap = container.get_bootstrap_server()
            return self.bootstrap
        from cli import localbroker
        from services.settings import Settings

        settings = Settings.from_env(data_dir=self.tmp / "broker", broker_port=free_port(2 * BROKER_NODES),
                                     broker_nodes=BROKER_NODES, kafka_bootstrap=None)
        localbroker.start(settings)
        self._stop = lambda: localbroker.stop(settings)
        self.bootstrap = settings.bootstrap_servers
        return self.bootstrap

    def stop(self) -> None:
        self._stop()


class Running:
    """What every system the harness runs shares: a data dir, an API port, the scanledger CLI
    and an API client over them, and waiting for /healthz. A subclass sets `env` and says which
    of its processes `exited()` and what its `logs()` end with."""

    env: dict[str, str]

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_urls = [self.url]  # a system of several API processes: clients take turns among them
        self._turns = 0

    @property
    def db_path(self) -> Path:
        return self.data_dir / "scanledger.db"

    @property
    def db_url(self) -> str:
        """Where the system's read models and configuration are (harness/databases.py)."""
        return self.env.get("SCANLEDGER_DATABASE_URL") or f"sqlite:///{self.db_path}"

    def cli_args(self, *args: str) -> list[str]:
        """The command line of `scanledger *args` as this system runs it (its env: self.env)."""
        return [sys.executable, "-m", "cli.main", *args]

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.cli_args(*args), env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=True)

    def client(self, token: str = TOKEN) -> httpx.Client:
        url = self.api_urls[self._turns % len(self.api_urls)]
        self._turns += 1
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def wait_healthy(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.exited():
                raise RuntimeError(f"{self.exited()} exited while starting; logs:\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"system not healthy after {timeout_s}s; logs:\n{self.logs()}")

    def exited(self) -> dict[str, int]:
        raise NotImplementedError

    def logs(self) -> str:
        raise NotImplementedError


class System(Running):
    """Worker, projector and API processes over one data dir and topic prefix.

    `per_process`: a process's own settings over the others' (name -> env), e.g. the worker on
    another data dir, as on another host; its log stays in `data_dir`."""

    def __init__(self, bootstrap: str, data_dir: Path, per_process: dict[str, dict[str, str]] | None = None,
                 **env: str):
        super().__init__(data_dir)
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SCANLEDGER_DATA_DIR": str(data_dir),
                    "SCANLEDGER_TOPIC_PREFIX": f"test-{uuid.uuid4().hex[:8]}", "SCANLEDGER_ADMIN_TOKEN": TOKEN,
                    "SCANLEDGER_PORT": str(self.port), **kafka_env(), **databases.for_system(), **env}
        self.per_process = per_process or {}
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> System:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name in ("worker", "projector", "api"):
            log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child's stdout for its life)
            self.processes[name] = subprocess.Popen([sys.executable, "-m", "cli.main", name],
                                                    env={**self.env, **self.per_process.get(name, {})},
                                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.wait_healthy()
        return self

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = {}

    def logs(self) -> str:
        out = []
        for name in ("worker", "projector", "api"):
            path = self.data_dir / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)
