"""Keeping a set of child processes running: what `up` (and the end-to-end tests) start.

A child that exits is started again after a backoff (1 s, doubling to 30 s; back to 1 s
once it has run for a minute) while the others keep running; `up` calls poll() for that only once the
API is healthy, and before that gives up on a child that exits (failed()). Each child runs in a session
of its own, so a terminal's Ctrl-C reaches only the supervisor, which then stops every child
with SIGTERM (the worker commits and leaves its group) and SIGKILLs one that does not exit.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BACKOFF_MIN_S, BACKOFF_MAX_S, STEADY_S = 1.0, 30.0, 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_MIN_S
    restart_at: float | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)
    log_start: int = 0  # where this run's lines begin in log_path

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def last_line(self) -> str:
        """The last line this run wrote to its log (a process that fails at start says why there)."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_start)
            lines = log.read().decode(errors="replace").split("\n")
        return next((line.strip() for line in reversed(lines) if line.strip()), "(nothing in its log)")


class Supervisor:
    def __init__(self, children: list[tuple[str, list[str]]], logs: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, say: Callable[[str], None] = print):
        self.children = {name: Child(name, argv, logs / f"{name}.log") for name, argv in children}
        self.env, self.cwd, self.say, self.logs = env, cwd, say, logs
        logs.mkdir(parents=True, exist_ok=True)

    def start(self) -> Supervisor:
        for child in self.children.values():
            self._spawn(child)
        return self

    def _spawn(self, child: Child) -> None:
        with open(child.log_path, "ab") as log:
            child.log_start = log.tell()
            child.process = subprocess.Popen(child.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                             cwd=self.cwd, start_new_session=True)
        child.started_at, child.restart_at = time.monotonic(), None

    def failed(self) -> list[Child]:
        """The children that have exited, without restarting them: `up` gives up on one that fails at start."""
        return [child for child in self.children.values() if child.process is not None and not child.alive]

    def poll(self) -> None:
        """Restart what exited, once its backoff has passed. Call this every so often."""
        now = time.monotonic()
        for child in self.children.values():
            if child.alive:
                if now - child.started_at >= STEADY_S:
                    child.backoff_s = BACKOFF_MIN_S
                continue
            if child.restart_at is None:
                code = child.process.returncode if child.process else None
                child.exits.append(code)
                child.restart_at = now + child.backoff_s
                self.say(f"{child.name} exited with {code}; restarting in {child.backoff_s:.0f}s "
                         f"(see {child.log_path})")
                child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)
            elif now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)

    def signal(self, name: str, sig: int) -> None:
        """Send a signal to one child (the fault tests kill one this way)."""
        child = self.children[name]
        if child.alive:
            os.kill(child.process.pid, sig)

    def stop(self, timeout_s: float = 30) -> None:
        for child in self.children.values():
            if child.alive:
                child.process.terminate()
        deadline = time.monotonic() + timeout_s
        for child in self.children.values():
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {timeout_s:.0f}s; killing it")
                child.process.kill()
                child.process.wait()


def install_stop_handlers() -> Callable[[], bool]:
    """SIGINT and SIGTERM ask the caller's loop to stop; returns the 'asked to stop' check."""
    asked = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: asked.append(True))
    return lambda: bool(asked)
