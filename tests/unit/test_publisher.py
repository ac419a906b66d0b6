"""The shared Publisher without a broker: each caller hears of its own failures only, an outage
is not a stall, and a stuck producer is replaced with its messages reported failed
(services/adapters/kafka.py, services/domain/delivery.py)."""
import threading
import time

import pytest

from harness.system import free_port
from services.adapters.kafka import DeliveryFailed, Publisher, describe_stats
from services.domain.delivery import Batch, producer_stalled
from services.settings import Settings


def event(n: int = 0) -> dict:
    return {"id": f"e{n}", "subject": "s1", "type": "scanledger.test.v1", "source": "t", "specversion": "1.0",
            "time": "2026-01-01T00:00:00Z", "data": {"n": n}}


def nobody_listens(**overrides) -> Publisher:
    return Publisher(Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}"), **{"log_level": 0, **overrides})


def test_a_producer_is_stalled_only_with_messages_waiting_and_nothing_delivered_for_the_bound():
    assert not producer_stalled(0, waiting_since=0, last_delivered=0, now=100, after_s=30)  # idle
    assert producer_stalled(3, waiting_since=0, last_delivered=0, now=30, after_s=30)
    assert not producer_stalled(3, waiting_since=0, last_delivered=10, now=30, after_s=30)  # delivered lately
    assert not producer_stalled(3, waiting_since=10, last_delivered=0, now=30, after_s=30)  # busy since 10 only


def test_a_batch_counts_its_own_reports():
    batch = Batch()
    batch.sent(), batch.sent()
    batch.settled(None)
    batch.settled("Local: Message timed out")
    assert batch.pending == 0 and batch.errors == ["Local: Message timed out"] and not batch.closed


def test_a_flush_reports_the_callers_failures_not_another_callers():
    publisher = nobody_listens(**{"message.timeout.ms": 300})
    publisher.publish("t.events", event())
    other: list[BaseException | None] = []

    def another_caller() -> None:  # a thread has a context of its own: nothing published there
        try:
            publisher.flush(2)
            other.append(None)
        except DeliveryFailed as exc:
            other.append(exc)

    thread = threading.Thread(target=another_caller)
    thread.start()
    thread.join()
    with pytest.raises(DeliveryFailed, match="timed out"):
        publisher.flush(5)
    assert other == [None]
    publisher.flush(1)  # reported once: nothing new since


def test_an_unreachable_broker_is_an_outage_not_a_stall():
    publisher = nobody_listens(stall_s=0.1)
    publisher.probe_s = 0.5
    publisher.publish("t.events", event())
    with pytest.raises(DeliveryFailed, match="1 messages undelivered"):
        publisher.flush(0.5)
    assert publisher.replaced == 0  # the producer is not what is stuck
    with pytest.raises(DeliveryFailed):  # still undelivered: waited for again
        publisher.flush(0.2)


def test_a_stuck_producer_is_replaced_and_its_messages_reported_failed(monkeypatch):
    publisher = nobody_listens(stall_s=0.1)
    stuck = publisher._producer
    monkeypatch.setattr(publisher, "_stalled", lambda: publisher._producer)  # as if the broker answered
    publisher.publish("t.events", event(1))
    publisher.publish("t.events", event(2))
    with pytest.raises(DeliveryFailed, match="replaced"):
        publisher.flush(0.3)
    assert publisher.replaced == 1 and publisher._producer is not stuck and len(stuck) == 0
    publisher.flush(0.1)  # the purged messages were reported (and sent again by the caller's retry)


def test_the_statistics_of_a_stuck_producer_are_summed_up():
    raw = ('{"msg_cnt": 4, "eos": {"idemp_state": "WaitPID", "idemp_stateage": 95000000, "producer_id": -1, '
           '"producer_epoch": -1}, "brokers": {"b": {"name": "127.0.0.1:9092/1", "nodeid": 1, "state": "UP", '
           '"outbuf_msg_cnt": 0, "waitresp_msg_cnt": 0}, "i": {"name": ":0/internal", "nodeid": -1}}}')
    assert describe_stats(raw) == ("idempotence WaitPID for 95.0 s, PID -1/-1; msg_cnt 4; "
                                   "brokers: 127.0.0.1:9092/1: UP, outbuf 0, waitresp 0")
    assert describe_stats("") == "no statistics"


def test_a_publisher_told_of_failures_only_still_reports_each_to_its_caller():
    publisher = nobody_listens(failures_only=True, **{"message.timeout.ms": 300})
    publisher.publish("t.events", event(1))
    publisher.publish("t.events", event(2))
    with pytest.raises(DeliveryFailed, match=r"^0 messages undelivered; errors: \['[^']*timed out[^']*', "
                                               r"'[^']*timed out[^']*'\]$"):
        # returns once both are reported (librdkafka scans for timed-out messages once a second; on a loaded CI
        # machine the second came after 5 s): the budget only bounds a flush that never ends
        publisher.flush(60)
    # Reported once: nothing new since. (Not len(producer) == 0: librdkafka counts an event waiting to be
    # served in it, statistics every 5 s or a client error, and one can come right after the flush.)
    publisher.flush(1)


def test_an_event_served_is_not_a_delivery_to_a_publisher_told_of_failures_only():
    """librdkafka counts an event (statistics, a client error) in the producer's length until it is
    served. Served, the length falls; that was taken for a delivery, and put off the stall check of a
    stuck producer."""
    publisher = nobody_listens(failures_only=True, **{"statistics.interval.ms": 10})
    publisher.publish("t.events", event(1))  # never delivered: nobody listens
    batch = publisher._batch.get()[0]
    publisher._pending(batch)
    last_delivered = publisher._last_delivered
    while True:
        with publisher._serving:  # the publisher's own thread serves every second: not now
            if len(publisher._producer) >= 2:  # an event waits beside the message
                served = publisher._events_served
                break
        time.sleep(0.005)
    publisher._pending(batch)  # a look with the event held
    publisher._serve(0)
    publisher._pending(batch)  # a look with the event served
    assert publisher._events_served > served
    assert publisher._last_delivered == last_delivered


def test_a_publisher_told_of_failures_only_waits_for_every_message_it_holds():
    publisher = nobody_listens(failures_only=True, stall_s=60)
    publisher.publish("t.events", event())
    with pytest.raises(DeliveryFailed, match="1 messages undelivered"):
        publisher.flush(0.3)
    with pytest.raises(DeliveryFailed, match="1 messages undelivered"):  # still held: waited for again
        publisher.flush(0.1)


def test_a_stuck_producer_told_of_failures_only_is_replaced_and_its_messages_reported_failed(monkeypatch):
    publisher = nobody_listens(failures_only=True, stall_s=0.1)
    stuck = publisher._producer
    monkeypatch.setattr(publisher, "_stalled", lambda: publisher._producer)  # as if the broker answered
    publisher.publish("t.events", event(1))
    with pytest.raises(DeliveryFailed, match="replaced"):
        publisher.flush(0.3)
    assert publisher.replaced == 1 and len(stuck) == 0
    publisher.flush(0.1)


def test_the_publishers_positional_produce_is_the_keyword_call():
    """_produce_all passes Producer.produce its arguments by position: the same message, partitioned and
    reported as by keywords (its headers: every record of a scan is checked to carry them, in
    tests/e2e/test_cloudevents_consumers.py)."""
    from confluent_kafka import Producer

    from services.adapters.kafka import PARTITIONER
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0, "message.timeout.ms": 200})
    reports: list[tuple] = []

    def on_delivery(err, msg) -> None:
        reports.append((err is not None, msg.topic(), msg.partition(), msg.key(), msg.value()))
    hdrs = [("scanledger-type", b"t")]
    producer.produce("t.events", b"v", b"k", PARTITIONER, on_delivery, None, 0, hdrs)
    producer.produce("t.events", value=b"v", key=b"k", headers=hdrs, on_delivery=on_delivery)
    producer.flush(5)
    assert len(reports) == 2 and reports[0] == reports[1], reports
    assert reports[0][:2] == (True, "t.events") and reports[0][3:] == (b"k", b"v")
