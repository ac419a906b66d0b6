"""`scanledger up` (and a single process) given a setting it cannot start with, run from another working
directory with only documented settings: it exits non-zero with exactly one line on stderr naming the
setting to fix, no traceback, and leaves nothing running (no process with its data dir, no port held)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.system import ROOT, free_port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_with(data_dir: Path) -> list[int]:
    """Every process started with this data dir in its environment (up's children inherit it, the broker too)."""
    marker = f"SCANLEDGER_DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                pass
    return pids


class Run:
    def __init__(self, tmp: Path, data_dir: Path | None = None, **env: str):
        self.data_dir = data_dir or tmp / "data"
        self.api_port, self.broker_port = free_port(), free_port(2)
        elsewhere = tmp / "elsewhere"
        elsewhere.mkdir()
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("SCANLEDGER_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
        self.env = {**base, "PYTHONPATH": str(ROOT), "SCANLEDGER_DATA_DIR": str(self.data_dir),
                    "SCANLEDGER_PORT": str(self.api_port), "SCANLEDGER_BROKER_PORT": str(self.broker_port), **env}
        self.cwd = elsewhere

    def __call__(self, *command: str) -> str:
        """Run `scanledger *command`; check the exit and that nothing survives; the one line on stderr."""
        done = subprocess.run([sys.executable, "-m", "cli.main", *command], env=self.env, cwd=self.cwd,
                              capture_output=True, text=True)
        assert done.returncode != 0, done.stdout
        assert "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"scanledger {command[0]}: ")
        assert _processes_with(self.data_dir) == []
        return lines[0]


@pytest.fixture()
def held_port():
    """A port another (non-Kafka, non-HTTP) program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", ["up", "api"])
def test_api_port_taken(tmp_path, held_port, command):
    run = Run(tmp_path, SCANLEDGER_PORT=str(held_port))
    line = run(command)
    assert f"port {held_port}" in line and "SCANLEDGER_PORT" in line
    assert not _listening(run.broker_port)


def test_broker_port_taken_by_another_program(tmp_path, held_port):
    run = Run(tmp_path, SCANLEDGER_BROKER_PORT=str(held_port))
    line = run("up")
    assert f"port {held_port}" in line and "SCANLEDGER_BROKER_PORT" in line
    assert not _listening(run.api_port) and not _listening(held_port + 1)


@pytest.mark.parametrize("command", ["up", "api", "worker", "projector"])
def test_data_dir_not_writable(tmp_path, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    run = Run(tmp_path, data_dir=a_file / "data")
    line = run(command)
    assert str(a_file / "data") in line and "SCANLEDGER_DATA_DIR" in line
    assert not _listening(run.api_port) and not _listening(run.broker_port)


def test_a_kafka_of_the_users_that_does_not_answer(tmp_path):
    nothing_there = free_port()
    run = Run(tmp_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{nothing_there}")
    line = run("up")
    assert f"127.0.0.1:{nothing_there}" in line and "KAFKA_BOOTSTRAP_SERVERS" in line
    assert not _listening(run.api_port)
    assert not (run.data_dir / "logs").exists()  # no process was started


@pytest.mark.parametrize("command", ["up", "api", "projector", "db"])
def test_unsupported_database_url(tmp_path, command):
    run = Run(tmp_path, SCANLEDGER_DATABASE_URL="mysql://scan:hunter2@db.example/ledger")
    line = run(command, *(["status"] if command == "db" else []))
    assert "mysql://scan:***@db.example/ledger" in line and "SCANLEDGER_DATABASE_URL" in line
    assert "hunter2" not in line
    assert not _listening(run.api_port) and not _listening(run.broker_port)


def test_replay_into_an_unsupported_database_url(tmp_path):
    run = Run(tmp_path)
    line = run("replay", "--into", "mysql://scan:hunter2@db.example/ledger")
    assert "mysql://scan:***@db.example/ledger" in line and "--into" in line
    assert "hunter2" not in line


def test_unreachable_postgresql(tmp_path):
    nothing_there = free_port()
    run = Run(tmp_path, SCANLEDGER_DATABASE_URL=f"postgresql://scan:hunter2@127.0.0.1:{nothing_there}/ledger")
    line = run("up")
    assert f"127.0.0.1:{nothing_there}" in line and "SCANLEDGER_DATABASE_URL" in line
    assert "hunter2" not in line
    assert not _listening(run.api_port) and not _listening(run.broker_port)


def test_a_process_that_fails_after_the_broker_started_stops_everything(tmp_path):
    """The worker refuses its log level only once `up` has started the real broker and the other processes:
    up relays the worker's line and stops the broker, the projector and the API."""
    run = Run(tmp_path, SCANLEDGER_WORKER_LOGLEVEL="loud")
    line = run("up")
    assert line.startswith("scanledger up: the worker exited with 2 while starting: ")
    assert "SCANLEDGER_WORKER_LOGLEVEL" in line and str(run.data_dir / "logs" / "worker.log") in line
    assert (run.data_dir / "kafka").is_dir()  # the broker had started
    assert not _listening(run.broker_port) and not _listening(run.broker_port + 1)
    assert not _listening(run.api_port)
