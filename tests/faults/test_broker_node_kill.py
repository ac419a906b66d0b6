"""A 3-node Kafka cluster (replication factor 3, min.insync.replicas 2, acks=all): one node SIGKILLed
mid-scan, each node in turn, and kept down until the scans settle. The other two lead: every scan
ends final and exact, replay equals live; the node then comes back and every partition is in sync."""
import pytest

from harness.faults import BrokerNodeKill, campaign, check
from harness.faults.knobs import trials

TRIALS = 3  # each node once


@pytest.fixture(scope="module")
def broker_node_kill(kafka, tmp_path_factory):
    with campaign(BrokerNodeKill, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("trial", trials(TRIALS))
def test_one_of_three_brokers_sigkilled_mid_scan(broker_node_kill, trial):
    check(broker_node_kill.trial(trial))
