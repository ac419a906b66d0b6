"""SIGKILL the worker mid-scan (some units reported, not all), then start a new worker: every
scan ends final with exactly the unfaulted answer, and replay equals live."""
import pytest

from harness.faults import WorkerKill, campaign, check
from harness.faults.knobs import trials

TRIALS = 5  # each kill point (Campaign.kill_point: they repeat every 5 trials) once; chaos and the other kinds kill too


@pytest.fixture(scope="module")
def worker_kill(kafka, tmp_path_factory):
    with campaign(WorkerKill, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("trial", trials(TRIALS))
def test_worker_sigkilled_mid_scan_then_restarted(worker_kill, trial):
    check(worker_kill.trial(trial))
