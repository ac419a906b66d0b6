"""Three streams workers, two projectors and two API processes on one database, the clients taking
turns between the APIs: each scan ends exactly as in an unfaulted run of the same system; one worker
or one projector SIGKILLed mid-scan (each kind twice) and left down: the others take its partitions,
nothing lost, nothing doubled, replay equal to live."""
import pytest

from harness.faults import ScaleOut, campaign, check
from harness.faults.knobs import trials

TRIALS = 4  # worker2, projector2, worker, projector


@pytest.fixture(scope="module")
def scale_out(kafka, tmp_path_factory):
    with campaign(ScaleOut, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("trial", trials(TRIALS))
def test_one_of_three_workers_or_two_projectors_sigkilled_mid_scan(scale_out, trial):
    check(scale_out.trial(trial))
