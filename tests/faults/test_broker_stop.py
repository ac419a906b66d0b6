"""The broker stopped for 10 s mid-scan, then started again (a broker of this module's own): the
scan ends final and exact; a scan POSTed during the outage is a 503 with Retry-After or a scan
that ends final and exact, never one reported failed that runs anyway."""
import pytest

from harness.faults import BrokerStop, campaign, check


@pytest.fixture(scope="module")
def broker_stop(kafka, tmp_path_factory):
    with campaign(BrokerStop, kafka, tmp_path_factory) as running:
        yield running


def test_broker_stopped_10s_mid_scan(broker_stop):
    check(broker_stop.trial(1))
