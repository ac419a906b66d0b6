"""Two workers; one SIGKILLed mid-scan and not restarted (each in turn): the other finishes exact."""
import pytest

from harness.faults import TwoWorkers, campaign, check
from harness.faults.knobs import trials

TRIALS = 2


@pytest.fixture(scope="module")
def two_workers(kafka, tmp_path_factory):
    with campaign(TwoWorkers, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("trial", trials(TRIALS))
def test_one_of_two_workers_sigkilled_mid_scan(two_workers, trial):
    check(two_workers.trial(trial))
