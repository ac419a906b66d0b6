"""Poison records: where what a consumer cannot use goes.

`decode_checked` (services.domain.codec) decodes a record and raises `PoisonRecord` for one no
consumer can use. `DeadLetters` produces such a record, unchanged, to the
dead-letter topic (`<prefix>.dead-letter`, keyed by the source key) with the source
coordinates and the error in headers, so the consumer can go on:

    dl.source.topic, dl.source.partition, dl.source.offset   where the record was
    dl.error                                                 why it was refused
    dl.consumer                                              who refused it (projector, replay, coordinator, …)

plus the record's own headers. A consumer commits the offset that skips a record only after
`DeadLetters.flush()` returned (at-least-once into the dead-letter topic). Re-sends after a
crash are possible and harmless: (dl.consumer, source topic, partition, offset) identifies
one dead letter, and `dead_lettered()` gives the coordinates already sent, which `replay`
uses so a rebuild does not send the live projector's dead letters again.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from services.domain.codec import PoisonRecord
from services.settings import Settings

log = logging.getLogger("scanledger.deadletter")

SOURCE_TOPIC = "dl.source.topic"
SOURCE_PARTITION = "dl.source.partition"
SOURCE_OFFSET = "dl.source.offset"
ERROR = "dl.error"
CONSUMER = "dl.consumer"
DL_HEADERS = (SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, ERROR, CONSUMER)
MAX_ERROR = 1000  # characters of the error kept in its header


# --- sending -----------------------------------------------------------------------------

def _attr(message, name: str):
    """confluent-kafka messages have methods (m.topic()), Faust's Message has attributes."""
    value = getattr(message, name)
    return value() if callable(value) else value


def _headers_list(headers) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, v if isinstance(v, (bytes, bytearray)) or v is None else str(v).encode()) for k, v in items]


class DeadLetters:
    """Sends poison records of one consumer to the dead-letter topic and counts them.

    Thread-safe (the Publisher is). `send` only queues the produce: call `flush()` (or
    `await flush_async()`) before committing the offset that skips the record.
    `skip` is a set of (topic, partition, offset) already dead-lettered, or a function that
    returns it (called at the first refusal, so a consumer that never refuses never reads the
    dead-letter topic): those are counted and logged at debug level but not sent again.
    """

    def __init__(self, publisher, consumer: str, settings: Settings | None = None, topic: str | None = None,
                 skip: set[tuple[str, int, int]] | Callable[[], set[tuple[str, int, int]]] | None = None):
        if topic is None:
            topic = (settings or Settings.from_env()).topics.dead_letter
        self.publisher = publisher
        self.consumer = consumer
        self.topic = topic
        self._skip = skip if skip is not None else set()
        self.sent = 0  # produced to the dead-letter topic
        self.skipped = 0  # refused again, but dead-lettered before (not re-sent)
        self.pending = 0  # sent since the last flush
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self.sent + self.skipped

    def send(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
             headers, error: BaseException | str) -> None:
        reason = error.reason if isinstance(error, PoisonRecord) else (
            error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        if callable(self._skip):
            self._skip = self._skip()
        if (topic, partition, offset) in self._skip:
            with self._lock:
                self.skipped += 1
            log.debug("%s: %s[%d]@%d was dead-lettered before (%s)", self.consumer, topic, partition, offset, reason)
            return
        out = _headers_list(headers)
        out += [(SOURCE_TOPIC, topic.encode()), (SOURCE_PARTITION, str(partition).encode()),
                (SOURCE_OFFSET, str(offset).encode()), (ERROR, reason[:MAX_ERROR].encode(errors="replace")),
                (CONSUMER, self.consumer.encode())]
        self.publisher.publish_raw(self.topic, value, key, out)
        with self._lock:
            self.sent += 1
            self.pending += 1
        log.error("%s: dead-lettered %s[%d]@%d to %s: %s", self.consumer, topic, partition, offset, self.topic,
                  reason[:MAX_ERROR])

    def send_message(self, message, error: BaseException | str) -> None:
        """`send` for a consumed message: a confluent-kafka Message, or Faust's `event.message`."""
        self.send(_attr(message, "topic"), _attr(message, "partition"), _attr(message, "offset"),
                  _attr(message, "key"), _attr(message, "value"), _attr(message, "headers"), error)

    def flush(self, timeout: float = 60) -> None:
        """Wait until every dead letter sent is acked (raises services.adapters.kafka.DeliveryFailed)."""
        self.publisher.flush(timeout)
        with self._lock:
            self.pending = 0

    async def flush_async(self, timeout: float = 60) -> None:
        await self.publisher.flush_async(timeout)
        with self._lock:
            self.pending = 0


# --- reading -----------------------------------------------------------------------------

def _reader(settings: Settings):
    from confluent_kafka import Consumer

    from services.adapters.kafka import consumer_config

    # assign() only, never subscribe or commit: the group id is required by the client, unused
    return Consumer(consumer_config(settings, f"{settings.topics.prefix}-dead-letter-reader",
                                    **{"enable.auto.offset.store": False}))


def _partitions(consumer, topic: str, timeout: float) -> list[int]:
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None:
        return []
    return sorted(meta.partitions)


def _to_dict(m) -> dict[str, Any]:
    headers = m.headers() or []
    own = {k: (v.decode(errors="replace") if v is not None else None) for k, v in headers if k in DL_HEADERS}

    def number(name):
        try:
            return int(own.get(name))
        except (TypeError, ValueError):
            return None
    return {
        "source_topic": own.get(SOURCE_TOPIC), "source_partition": number(SOURCE_PARTITION),
        "source_offset": number(SOURCE_OFFSET), "consumer": own.get(CONSUMER), "error": own.get(ERROR),
        "key": m.key(), "value": m.value(), "headers": [(k, v) for k, v in headers if k not in DL_HEADERS],
        "timestamp_ms": m.timestamp()[1], "partition": m.partition(), "offset": m.offset(),
    }


def list_dead_letters(settings: Settings, limit: int | None = 100, timeout: float = 10) -> list[dict[str, Any]]:
    """The dead letters, oldest first: the newest `limit` (per partition the last `limit` are
    read, then the newest `limit` of them kept), or all when limit is None or 0. Reads from
    the watermarks with assign(), never joining a group or committing."""
    from confluent_kafka import TopicPartition

    topic = settings.topics.dead_letter
    consumer = _reader(settings)
    try:
        assignment, end = [], {}
        for p in _partitions(consumer, topic, timeout):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            start = low if not limit else max(low, high - limit)
            if high > start:
                assignment.append(TopicPartition(topic, p, start))
                end[p] = high
        if not assignment:
            return []
        consumer.assign(assignment)
        out, position = [], {tp.partition: tp.offset for tp in assignment}
        idle = 0
        while any(position[p] < end[p] for p in end) and idle * 0.5 < timeout:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            idle = 0 if batch else idle + 1
            for m in batch:
                if m.error() or m.offset() >= end[m.partition()]:
                    continue
                position[m.partition()] = m.offset() + 1
                out.append(_to_dict(m))
        out.sort(key=lambda d: (d["timestamp_ms"], d["partition"], d["offset"]))
        return out[-limit:] if limit else out
    finally:
        consumer.close()


def dead_lettered(settings: Settings, consumers: Iterable[str]) -> set[tuple[str, int, int]]:
    """Source coordinates (topic, partition, offset) already dead-lettered by these consumers."""
    names = set(consumers)
    return {(d["source_topic"], d["source_partition"], d["source_offset"])
            for d in list_dead_letters(settings, limit=None) if d["consumer"] in names}


_count_lock = threading.Lock()
_count_readers: dict[str, Any] = {}


def count(settings: Settings, timeout: float = 3) -> int:
    """Records on the dead-letter topic (sum of high - low watermarks; re-sends count again).
    0 when the topic does not exist yet. One reader per bootstrap is kept (for /healthz)."""
    from confluent_kafka import TopicPartition

    from services.adapters.kafka_admin import offsets

    topic = settings.topics.dead_letter
    with _count_lock:
        consumer = _count_readers.get(settings.bootstrap_servers + "|" + topic)
        if consumer is None:
            consumer = _count_readers[settings.bootstrap_servers + "|" + topic] = _reader(settings)
        marks = offsets(consumer, [TopicPartition(topic, p) for p in _partitions(consumer, topic, timeout)], timeout)
        return sum(high - low for low, high in marks.values())
