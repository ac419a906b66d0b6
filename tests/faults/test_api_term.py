"""SIGTERM the API while POST /api/scan/run is in flight (at a different moment each trial), then
start it again. Answered or not, nothing stays pending: every scan that exists anywhere is
visible, listed, final and exact."""
import pytest

from harness.faults import ApiTerm, campaign, check
from harness.faults.knobs import trials

TRIALS = 3


@pytest.fixture(scope="module")
def api_term(kafka, tmp_path_factory):
    with campaign(ApiTerm, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("trial", trials(TRIALS))
def test_api_sigtermed_during_scan_run(api_term, trial):
    check(api_term.trial(trial))
