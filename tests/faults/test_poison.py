"""Poison records on each topic while a scan runs (on every partition: bytes that are not JSON,
JSON that is not an object, an envelope whose data breaks its contract, each with the (legacy) ce_type
header its consumer handles): the scan completes exact, no process stops, /healthz counts the
dead letters and the dead-letter topic holds every one with its source coordinates."""
import pytest

from harness.faults import Poison, campaign, check


@pytest.fixture(scope="module")
def poison(kafka, tmp_path_factory):
    with campaign(Poison, kafka, tmp_path_factory) as running:
        yield running


@pytest.mark.parametrize("topic", Poison.TOPICS)
def test_poison_records_on_a_topic_mid_scan(poison, topic):
    check(poison.trial(Poison.TOPICS.index(topic)))
