"""Ctrl-C of `scanledger up` (SIGINT to its whole process group, as a terminal sends it) mid-scan,
then `up` again on the same data dir: up stops cleanly, and the scan ends final and exact.
Trial 1 runs up with its own local broker (a user's first `up`), trial 2 on the test broker (a third
trial, its own broker again, was cut for CI's 40 minutes: the same path as trial 1 at another moment)."""
import pytest

from harness.faults import UpCtrlC, campaign, check
from harness.faults.knobs import trials

TRIALS = 2


@pytest.fixture(scope="module")
def up_ctrl_c(kafka, tmp_path_factory):
    with campaign(UpCtrlC, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("trial", trials(TRIALS))
def test_up_interrupted_mid_scan_then_up_again(up_ctrl_c, trial):
    check(up_ctrl_c.trial(trial))
