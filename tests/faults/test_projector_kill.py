"""SIGKILL the projector mid-scan and start it again: no event is applied twice or skipped."""
import pytest

from harness.faults import ProjectorKill, campaign, check
from harness.faults.knobs import trials

TRIALS = 2


@pytest.fixture(scope="module")
def projector_kill(kafka, tmp_path_factory):
    with campaign(ProjectorKill, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("trial", trials(TRIALS))
def test_projector_sigkilled_mid_scan_then_restarted(projector_kill, trial):
    check(projector_kill.trial(trial))
