"""The record pipeline and the evaluator without Kafka: what is acked, retried, dead-lettered."""
import asyncio

import pytest

from services.adapters.blobstore import BlobUnavailable
from services.adapters.kafka import DeliveryFailed
from services.domain import contracts as c
from services.domain.command_expiry import with_expiry
from services.domain.envelope import encode, headers, make_event
from services.settings import Settings
from streams.evaluator import Evaluator
from streams.record_handling import Record, RecordHandling
from tests.unit.test_lifecycle import run_scan_command

COMMANDS = "t.commands"


class DeadLetters:
    def __init__(self, fail_flushes=0):
        self.sent, self.flushes, self.fail_flushes = [], 0, fail_flushes

    def send_message(self, source, error):
        self.sent.append((source, str(error)))

    async def flush_async(self, timeout=60):
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise DeliveryFailed("broker away")
        self.flushes += 1


def run_scan():
    return run_scan_command()  # a valid RunScan: the pipeline checks every record against its contract


def record(event_or_bytes, topic=COMMANDS, timestamp_ms=None):
    if isinstance(event_or_bytes, bytes):
        return Record(event_or_bytes, [], topic, timestamp_ms, source=("raw", event_or_bytes))
    return Record(encode(event_or_bytes), headers(event_or_bytes), topic, timestamp_ms, source=event_or_bytes["id"])


def pipeline(dead=None):
    return RecordHandling(dead or DeadLetters(), COMMANDS, retry_max_s=0.001)


def test_a_record_that_is_no_cloudevent_is_dead_lettered_and_flushed_before_the_ack():
    dead, handled = DeadLetters(), []
    asyncio.run(pipeline(dead).process(record(b"\xff not json"), lambda m, _digest="": handled.append(m)))
    assert handled == [] and dead.sent[0][0] == ("raw", b"\xff not json") and dead.flushes == 1


def test_a_command_appended_after_its_expiry_never_happened_elsewhere_expiry_is_no_rule():
    command = with_expiry(run_scan(), timeout_s=5, now_ms=1_000_000)
    handled = []

    async def handler(message, _digest=""):
        handled.append(message["id"])

    asyncio.run(pipeline().process(record(command, timestamp_ms=1_000_000 + 10_000), handler))
    assert handled == []
    asyncio.run(pipeline().process(record(command, timestamp_ms=1_000_000 + 1_000), handler))
    assert handled == ["cmd-1"]
    asyncio.run(pipeline().process(record(command, topic="t.scan-events", timestamp_ms=1_000_000 + 10_000), handler))
    assert handled == ["cmd-1", "cmd-1"]


def test_a_ledger_that_cannot_be_written_is_retried_until_it_is_never_skipped():
    dead, calls = DeadLetters(), []

    async def handler(message, _digest=""):
        calls.append(message["id"])
        if len(calls) < 3:
            raise DeliveryFailed("2 messages undelivered")

    asyncio.run(pipeline(dead).process(record(run_scan()), handler))
    assert calls == ["cmd-1"] * 3 and dead.sent == []


def test_a_blob_store_that_does_not_answer_is_retried_until_it_does_never_dead_lettered():
    dead, calls = DeadLetters(), []

    async def handler(message, _digest=""):
        calls.append(message["id"])
        if len(calls) < 3:
            raise BlobUnavailable("cannot read blob b from s3://blobs: EndpointConnectionError")

    asyncio.run(pipeline(dead).process(record(run_scan()), handler))
    assert calls == ["cmd-1"] * 3 and dead.sent == []


def test_a_record_the_code_cannot_handle_is_dead_lettered_with_its_error_and_the_worker_goes_on():
    dead = DeadLetters(fail_flushes=1)  # and the dead letter itself waits for the broker

    async def handler(message, _digest=""):
        raise KeyError("policy")

    asyncio.run(pipeline(dead).process(record(run_scan()), handler))
    assert dead.sent == [("cmd-1", "'policy'")] and dead.flushes == 1


def test_activity_counts_a_record_while_it_is_handled():
    records, seen = pipeline(), []

    async def handler(message, _digest=""):
        seen.append(records.activity.busy)

    before = records.activity.last
    asyncio.run(records.process(record(run_scan()), handler))
    assert seen == [1] and records.activity.busy == 0 and records.activity.last >= before


# --- the evaluator --------------------------------------------------------------------------------

class Publisher:
    def __init__(self):
        self.events, self.flushes = [], 0

    def chained(self, stream):
        return self

    def publish(self, topic, event, key=None):
        self.events.append((topic, event))

    async def flush_async(self, timeout=60):
        self.flushes += 1


class Aborts:
    def __init__(self, aborted=()):
        self.aborted = set(aborted)

    def is_aborted(self, scan_id, attempt):
        return (scan_id, attempt) in self.aborted


WORK = make_event(c.WORK_UNIT, "s1", {"scan_id": "s1", "unit_id": "s1.u0", "index": 0, "blob": "b", "attempt": 1,
                                      "record_count": 3, "counted_records": 3, "rules": [], "mapping": {}},
                  id="work-1", source="t", workspace_id="w")


def evaluate(run, aborted=()):
    publisher = Publisher()
    asyncio.run(Evaluator(publisher, None, Settings(), Aborts(aborted), run=run).evaluate(WORK))
    return publisher


def test_a_unit_of_an_aborted_attempt_is_not_run():
    ran = []
    assert evaluate(lambda *a: ran.append(a), aborted={("s1", 1)}).events == [] and ran == []


def test_the_run_can_ask_whether_its_scan_was_aborted_meanwhile():
    answers = []
    evaluate(lambda message, blobs, publisher, settings, stop: answers.append(stop()))
    assert answers == [False]


def test_a_unit_the_code_cannot_evaluate_fails_and_its_scan_goes_on():
    def run(*_):
        raise ValueError("bad blob")

    publisher = evaluate(run)
    [(topic, event)] = publisher.events
    assert topic == Settings().topics.scan_events and event["type"] == c.UNIT_FAILED
    assert event["data"]["unit_id"] == "s1.u0" and "bad blob" in event["data"]["error"] and publisher.flushes == 1


def test_a_ledger_that_cannot_be_written_is_raised_for_the_pipeline_to_retry():
    def run(*_):
        raise DeliveryFailed("broker away")

    with pytest.raises(DeliveryFailed):
        evaluate(run)


def test_a_blob_store_that_does_not_answer_is_raised_for_the_pipeline_to_retry_not_a_failed_unit():
    def run(*_):
        raise BlobUnavailable("cannot read blob b from s3://blobs: EndpointConnectionError")

    publisher = Publisher()
    with pytest.raises(BlobUnavailable):
        asyncio.run(Evaluator(publisher, None, Settings(), Aborts(), run=run).evaluate(WORK))
    assert publisher.events == []
