"""Reading the ledger itself, for audit: chosen partitions, from a start to an end, end included
of nothing written after the read began (or after an `as of` time).

The audit tools (`scanledger history`, `verify`, `replay --as-of`) read the log, not the read
models: what they report is what the log holds. A reader assigns partitions (no consumer group,
no commit) and stops at the ends it computed when it began.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from services.adapters.kafka import consumer_config
from services.settings import Settings

BATCH = 10_000
SILENCE_S = 30.0  # no record for this long while some are left to read: the broker is away or they are gone


class LedgerUnreadable(Exception):
    """The log did not give the records a read was promised (the broker stopped answering, or retention
    removed them while it read)."""

Span = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (start, end): offsets to read, end excluded


class Meter(Protocol):
    """What a reader reports its progress to (a tqdm bar fits): how much there is, then each part read."""
    total: float | None

    def update(self, n: int) -> object: ...


class _Silent:
    total: float | None = None

    def update(self, n: int) -> None:
        pass


class LedgerReader:
    def __init__(self, settings: Settings, purpose: str):
        self.consumer = Consumer(consumer_config(settings, f"{settings.projector_group}-{purpose}",
                                                 **{"fetch.max.bytes": 64 << 20,
                                                    "max.partition.fetch.bytes": 8 << 20}))

    def partitions(self, topic: str) -> list[int]:
        metadata = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        return sorted(metadata.partitions) if metadata is not None and not metadata.error else []

    def ends(self, tps: list[tuple[str, int]], as_of_ms: int | None = None, since_ms: int | None = None) -> Span:
        """Where a read of each partition starts and stops: from its start (or `since_ms`: the first record
        stamped at or after it) to its current end (or `as_of_ms`: the first record stamped at or after
        that instant). A record's stamp is its timestamp: the broker's on the commands topic."""
        span: Span = {}
        for topic, partition in tps:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            start, end = low, high
            if as_of_ms is not None:
                end = self._at(topic, partition, as_of_ms, high)
            if since_ms is not None:
                start = min(max(self._at(topic, partition, since_ms, high), low), end)
            span[(topic, partition)] = (start, end)
        return span

    def _at(self, topic: str, partition: int, ms: int, high: int) -> int:
        [found] = self.consumer.offsets_for_times([TopicPartition(topic, partition, ms)], timeout=10)
        return high if found.offset < 0 else min(found.offset, high)  # -1: nothing stamped at or after it

    def read(self, span: Span, meter: Meter | None = None) -> Iterator[Message]:
        """Every record of the span, partition by partition in offset order (partitions interleaved)."""
        for batch in self.batches(span, meter):
            yield from batch

    def batches(self, span: Span, meter: Meter | None = None, size: int = BATCH) -> Iterator[list[Message]]:
        """The records of the span a batch at a time (each partition's in offset order)."""
        meter = meter or _Silent()
        todo = {tp: (start, end) for tp, (start, end) in span.items() if end > start}
        meter.total = (meter.total or 0) + sum(end - start for start, end in todo.values())
        if not todo:
            return
        self.consumer.assign([TopicPartition(t, p, start if start > 0 else OFFSET_BEGINNING)
                              for (t, p), (start, _) in todo.items()])
        position = {tp: start for tp, (start, _) in todo.items()}
        remaining = sum(end - start for start, end in todo.values())
        heard = time.monotonic()
        while remaining > 0:
            # ask for no more than is left, or consume() waits out its timeout for a full batch
            batch = self.consumer.consume(num_messages=min(size, remaining), timeout=1.0)
            if batch:
                heard = time.monotonic()
            elif time.monotonic() - heard > SILENCE_S:
                left = {f"{t}[{p}]": end - position[(t, p)] for (t, p), (_, end) in todo.items()
                        if end > position[(t, p)]}
                raise LedgerUnreadable(f"no record for {SILENCE_S:.0f} s with {remaining} left to read: {left}")
            counted, kept = 0, []
            for m in batch:
                if m.error():
                    kept.append(m)  # the caller logs it
                    continue
                tp = (m.topic(), m.partition())
                if tp not in todo or m.offset() >= todo[tp][1]:
                    continue  # written after the read began (or after its as-of time): not this read's
                counted += max(0, m.offset() + 1 - position[tp])
                position[tp] = m.offset() + 1
                kept.append(m)
            if kept:
                yield kept
            # offsets missing from a compacted or transactional log count as read once a later one arrives
            remaining = sum(end - position[tp] for tp, (_, end) in todo.items() if end > position[tp])
            meter.update(counted)

    def close(self) -> None:
        self.consumer.close()
