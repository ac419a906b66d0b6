"""Kafka at the edge: the idempotent publisher and consumer settings (topics and health probes:
services.adapters.kafka_admin).

Every producer uses partitioner=murmur2_random, the Java client's (and aiokafka's, which
Faust uses) partitioner, so a scan id lands on the same partition whoever writes it and
the coordinator's table stays co-partitioned with commands and scan events.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from services.adapters.kafka_client import client_config
from services.domain.delivery import Batch, producer_stalled
from services.domain.envelope import encode, headers, type_headers
from services.domain.ledger_chain import Chain
from services.settings import Settings

log = logging.getLogger("scanledger.kafka")

class DeliveryFailed(Exception):
    pass


# A producer that holds messages and delivered none for this long while the broker answers is
# replaced (docs/decisions.md, "A worker's producer stalled after a broker restart").
STALL_S = 30.0
STATS_INTERVAL_MS = 5000  # librdkafka statistics, kept for the log line of a stalled producer
RETIRED_FLUSH_S = 2.0
PROBE_S = 5.0  # how long a stalled producer's metadata request may take to show the broker answers
SERVE_EVERY_S = 1.0
PARTITIONER = -1  # RD_KAFKA_PARTITION_UA: the configured partitioner chooses


class Publisher:
    """acks=all, idempotent producer of CloudEvents, shared by the tasks and threads of a process.

    flush() waits for the messages the calling task (or thread) published since its last
    flush and raises DeliveryFailed if any is undelivered or failed: one caller's failure is
    never reported to (and swallowed by) another. A producer with messages waiting that
    delivered none for `stall_s` while the broker answers is stuck (a broker restart once left
    the worker's idempotent producer so for minutes): the flush that finds it so replaces it
    with a new producer and purges the old one, so every message it held is reported failed
    to its caller, who sends again (event ids are deterministic: a copy that did land is
    a duplicate every consumer drops).

    `failures_only`: librdkafka reports failed messages only (`delivery.report.only.error`), so a
    delivered one costs no report (a Message object and a Python call: ~0.7 µs of a violation's
    ~7). A flush then cannot count its own deliveries: it waits until the producer holds nothing,
    every message delivered or its failure served to its caller (librdkafka counts a message until
    its report is served), its callers' and each other's. For callers that publish in bursts and
    flush after each (the evaluators), not for one that must not wait for another's burst.
    """

    def __init__(self, settings: Settings, stall_s: float = STALL_S, failures_only: bool = False, **overrides: Any):
        self._client = client_config(settings)  # what the stall probe connects with
        config = {
            **self._client,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 2,
            "compression.type": "lz4",
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "delivery.report.only.error": failures_only,
        }
        config.update(overrides)
        self._config = config
        self.stall_s = stall_s
        self._failures_only = failures_only
        self.probe_s = PROBE_S
        self.replaced = 0  # producers replaced after a stall
        self._lock = threading.Lock()
        # Held by whoever serves the producers' queues (their callbacks run inside poll), so that
        # _pending reads the events served and the producers' lengths as one moment.
        self._serving = threading.Lock()
        self._events_served = 0  # statistics and client errors (not delivery reports)
        self._retired: list[Producer] = []  # replaced, purged, polled until their reports are served
        self._stats = ""
        # The messages the current task or thread published since its last flush, with their
        # delivery callback (services.domain.delivery). A context variable: asyncio.to_thread copies
        # it, so a coroutine that publishes and then flushes in a thread waits for its own batch;
        # each task starts without one.
        self._batch: ContextVar[tuple[Batch, Any] | None] = ContextVar(f"publisher-{id(self)}", default=None)
        self._producer = self._new_producer()
        # reports and statistics are served even when nobody publishes or flushes (the projector's
        # dead letters), so they never pile up; the thread ends once the Publisher is collected
        threading.Thread(target=_serve_while_alive, args=(weakref.ref(self),), name="publisher-poll",
                         daemon=True).start()

    def _new_producer(self) -> Producer:
        self._waiting_since = self._last_delivered = time.monotonic()
        self._mark = 0  # the producers' lengths plus the events served, at the last look (failures_only)
        return Producer({**self._config, "stats_cb": self._on_stats, "error_cb": self._on_error})

    def _on_stats(self, stats: str) -> None:  # inside a poll, under self._serving
        self._stats = stats
        self._events_served += 1

    def _on_error(self, _err) -> None:  # inside a poll: a client error (a broker down...), retried by librdkafka
        self._events_served += 1

    def _current_batch(self) -> tuple[Batch, Any]:
        """The caller's open batch and its delivery callback (a new pair after a flush)."""
        current = self._batch.get()
        if current is None or current[0].closed:
            batch = Batch()
            current = (batch, self._reporter(batch))
            self._batch.set(current)
        return current

    def _reporter(self, batch: Batch):
        def on_delivery(err, _msg) -> None:
            with self._lock:
                batch.settled(None if err is None else str(err))
                if err is None:
                    self._last_delivered = time.monotonic()
        return on_delivery

    def _produce(self, topic: str, value: bytes | None, key: bytes | None, hdrs) -> None:
        self._produce_all(topic, (value,), 1, key, hdrs)

    def _produce_all(self, topic: str, values: Iterable[bytes | None], count: int, key: bytes | None, hdrs) -> None:
        """Produce `count` values with one key and headers: the caller's batch counts them once, and
        delivery reports are served once at the end (a unit's violations come 2,000 at a time)."""
        batch, on_delivery = self._current_batch()
        with self._lock:
            batch.sent(count)
        produced = 0
        try:
            producer = self._producer
            if len(producer) == 0:  # idle until now: its messages wait from here
                self._waiting_since = time.monotonic()
            produce = producer.produce
            for value in values:
                if self._producer is not producer:  # replaced (a stall, another caller's flush): the new one
                    producer = self._producer
                    produce = producer.produce
                try:  # the usual case, without asking the producer its length per message (a slice is 2,000)
                    # by position, as its C code parses them (topic, value, key, partition, callback, on_delivery,
                    # timestamp, headers: not the docstring's order): keywords are matched by name on every
                    # call, 0.55 µs of a 2.2 µs produce. tests/unit/test_publisher.py holds it to the keywords.
                    produce(topic, value, key, PARTITIONER, on_delivery, None, 0, hdrs)
                except (BufferError, KafkaException):
                    self._produce_one(topic, value, key, hdrs, on_delivery)
                produced += 1
        finally:
            if produced < count:  # raised: the rest were never sent, so no report will settle them
                with self._lock:
                    batch.pending -= count - produced
        self._serve_if_free(self._producer, 0, wait=0)  # the reports due, unless another caller serves them

    def _produce_one(self, topic: str, value: bytes | None, key: bytes | None, hdrs, on_delivery) -> None:
        """Produce one value the producer refused: its local queue full, or failed fatally."""
        while True:
            producer = self._producer
            if len(producer) == 0:
                self._waiting_since = time.monotonic()
            try:
                producer.produce(topic, value=value, key=key, headers=hdrs, on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: let deliveries drain
                self._serve_if_free(producer, 0.05, wait=0.05)
            except KafkaException as exc:
                if not exc.args[0].fatal():
                    raise
                # an idempotent producer that failed fatally refuses every later message
                self._replace(producer, f"it failed fatally: {exc.args[0]}")

    def publish(self, topic: str, event: dict, key: str | None = None) -> None:
        self._produce(topic, encode(event), (key or event["subject"]).encode(), headers(event))

    def publish_sealed(self, topic: str, event: dict, chain: Chain, key: str | None = None) -> None:
        """Publish the event as the next link of `chain` (services.domain.ledger_chain)."""
        self._produce(topic, chain.seal(event), (key or event["subject"]).encode(), headers(event))

    def publish_encoded(self, topic: str, raws: list[bytes], type_: str, key: str, chain: Chain) -> None:
        """Events already encoded (services.domain.evaluation.encoded_violations), all of one type and
        key, each sealed as the next link of `chain`."""
        self._produce_all(topic, chain.seal_all(raws), len(raws), key.encode(),
                          type_headers(type_))

    def chained(self, stream: str) -> ChainedPublisher:
        """This publisher, writing every event as the next link of one chain (one unit attempt's)."""
        return ChainedPublisher(self, Chain(stream))

    def publish_raw(self, topic: str, value: bytes | None, key: bytes | None,
                    headers: list[tuple[str, bytes]] | None = None) -> None:
        """Produce bytes as they are (the dead-letter topic keeps a poison record unchanged)."""
        self._produce(topic, value, key, headers)

    def _serve(self, timeout: float) -> None:
        """Serve delivery reports: the current producer's, and those a replaced one still owes."""
        with self._serving:
            for old in list(self._retired):
                old.poll(0)
                if len(old) == 0:
                    with self._lock:
                        if old in self._retired:
                            self._retired.remove(old)
            self._producer.poll(timeout)

    def _serve_if_free(self, producer: Producer, timeout: float, wait: float) -> None:
        """Poll `producer` unless another caller has been serving for `wait` seconds (it serves the same queue)."""
        if self._serving.acquire(timeout=wait):
            try:
                producer.poll(timeout)
            finally:
                self._serving.release()

    def flush(self, timeout: float = 60) -> None:
        """Wait until the caller's messages since its last flush are acked; DeliveryFailed if one is
        not by the timeout or failed (each failure is reported once; an undelivered message is
        waited for again by the next flush)."""
        current = self._batch.get()
        if current is None or current[0].closed:
            self._serve(0)
            return
        batch = current[0]
        deadline = time.monotonic() + timeout
        while True:
            pending = self._pending(batch)
            left = deadline - time.monotonic()
            if pending <= 0 or left <= 0:
                break
            # no report comes for a delivery (failures_only): poll briefly, or a flush would sleep the whole wait
            self._serve(min(left, 0.005 if self._failures_only else 0.1))
        note = ""
        if pending > 0 and (stuck := self._stalled()) is not None:
            note = self._replace(stuck, f"it delivered nothing for {self.stall_s:.0f} s with messages waiting "
                                        "while the broker answers")
            self._serve(0)
            pending = self._pending(batch)
        with self._lock:
            if self._failures_only:
                batch.pending = pending
            errors, batch.errors = batch.errors, []
            if pending <= 0:
                batch.closed = True
        if pending > 0 or errors:
            raise DeliveryFailed(f"{max(pending, 0)} messages undelivered; errors: {errors[:3]}{note}")

    def _pending(self, batch: Batch) -> int:
        """What the caller's flush still waits for: its messages without a report, or (failures_only) every
        message the producers hold, a delivery then counting as progress for the stall check.

        A producer's length also counts the events waiting to be served (librdkafka's
        rd_kafka_outq_len): statistics, one every STATS_INTERVAL_MS, and client errors, one per failed
        connection attempt while a broker is down. So progress is a fall of the lengths plus the
        events served so far, read with nobody serving: that sum only falls when a message leaves.
        (The lengths alone fell at every event served, which put off the stall check.)"""
        if not self._failures_only:
            with self._lock:
                return batch.pending
        with self._serving:
            held = len(self._producer) + sum(len(old) for old in list(self._retired))
            mark = held + self._events_served
        with self._lock:
            if mark < self._mark:
                self._last_delivered = time.monotonic()
            self._mark = mark
        return held

    async def flush_async(self, timeout: float = 60) -> None:
        await asyncio.to_thread(self.flush, timeout)

    def _stalled(self) -> Producer | None:
        """The current producer if it is stuck: messages wait, none was delivered for stall_s, and
        the broker answers a client of its own (so the producer, not the broker, is what does not
        move). Not the stuck producer's own metadata request: one that never reconnected after a
        broker restart has no connection to ask on."""
        producer = self._producer
        with self._lock:
            since, delivered = self._waiting_since, self._last_delivered
        if not producer_stalled(len(producer), since, delivered, time.monotonic(), self.stall_s):
            return None
        probe = AdminClient({**self._client, "log_level": 3})
        try:
            probe.list_topics(timeout=self.probe_s)
        except KafkaException:
            return None
        return producer

    def _replace(self, old: Producer, why: str) -> str:
        """A new producer takes over; the old one's messages are purged (reported failed)."""
        with self._lock:
            if self._producer is not old:  # another caller replaced it already
                return "; the producer was stuck and has been replaced"
            self._producer = self._new_producer()
            self._retired.append(old)
            self.replaced += 1
        state = describe_stats(self._stats)
        log.error("replacing the producer: %s; its %d messages are reported failed (their callers send them "
                  "again). Its state: %s", why, len(old), state)
        with contextlib.suppress(KafkaException, RuntimeError):
            old.purge(in_queue=True, in_flight=True, blocking=True)
        with self._serving:
            old.flush(RETIRED_FLUSH_S)  # serves the purge reports: each batch learns its messages failed
        return f"; the producer was stuck ({state}) and was replaced"


class ChainedPublisher:
    """A Publisher whose every event is the next link of one chain; flushing is the publisher's."""

    def __init__(self, publisher: Publisher, chain: Chain):
        self.publisher, self.chain = publisher, chain

    def publish(self, topic: str, event: dict, key: str | None = None) -> None:
        self.publisher.publish_sealed(topic, event, self.chain, key)

    def publish_encoded(self, topic: str, raws: list[bytes], type_: str, key: str) -> None:
        self.publisher.publish_encoded(topic, raws, type_, key, self.chain)

    def flush(self, *args, **kwargs):
        return self.publisher.flush(*args, **kwargs)

    def chained(self, stream: str) -> ChainedPublisher:
        return self if stream == self.chain.stream else self.publisher.chained(stream)


def _serve_while_alive(ref: weakref.ref) -> None:
    while (publisher := ref()) is not None:
        publisher._serve(0)
        del publisher
        time.sleep(SERVE_EVERY_S)


def describe_stats(raw: str) -> str:
    """What librdkafka's last statistics say of a stuck producer: its idempotence state and its
    broker connections (state, requests waiting, messages queued and in flight)."""
    try:
        stats = json.loads(raw)
    except ValueError:
        return "no statistics"
    eos = stats.get("eos", {})
    brokers = [f"{b.get('name')}: {b.get('state')}, outbuf {b.get('outbuf_msg_cnt')}, "
               f"waitresp {b.get('waitresp_msg_cnt')}" for b in stats.get("brokers", {}).values()
               if b.get("nodeid", -1) >= 0]
    return (f"idempotence {eos.get('idemp_state')} for {eos.get('idemp_stateage', 0) / 1e6:.1f} s, "
            f"PID {eos.get('producer_id')}/{eos.get('producer_epoch')}; msg_cnt {stats.get('msg_cnt')}; "
            f"brokers: {'; '.join(brokers) or 'none'}")


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return client_config(
        settings,
        **{"group.id": group_id,
           "enable.auto.commit": False,
           "auto.offset.reset": "earliest",
           "enable.partition.eof": False,
           "fetch.wait.max.ms": 50,
           "session.timeout.ms": 10000,  # a crashed projector's partitions are reassigned after 10 s
           "heartbeat.interval.ms": 3000,
           **overrides})


