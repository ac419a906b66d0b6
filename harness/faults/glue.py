"""The pytest glue: `campaign`, the context manager in which a test module's fixture runs its
campaign (setup before the first trial, teardown after the last, whatever happens), and `check`, the
assertion a test makes on each trial."""
from __future__ import annotations

import contextlib

from harness.faults.trials import Campaign, Trial

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


# Every checked trial's head line and notes (restarts, missed attempts, waits), listed at the end of the run
# (tests/conftest.py): a trial that passed slowly says why in CI's output, not only a failed one.
CHECKED: list[str] = []


def check(trial: Trial) -> None:
    """A trial passes only when every scan it started ended final and exactly equal to the reference,
    and replay equals live; the failure message has everything known about the trial."""
    lines = trial.summary().splitlines()
    CHECKED.append("\n".join(lines if trial.exact else lines[:1]))  # a failed one's whole summary is its assertion
    assert trial.exact, "\n" + trial.summary()
