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

    def ends(self, tps: list[tuple[str, int]], as_of_ms: int | None = None) -> Span:
        """Where each partition starts and where a read of it stops: its current end, or with `as_of_ms` the
        first record appended at or after that instant (its timestamp; the commands topic's is the broker's)."""
        span: Span = {}
        for topic, partition in tps:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            end = high
            if as_of_ms is not None:
                [found] = self.consumer.offsets_for_times([TopicPartition(topic, partition, as_of_ms)], timeout=10)
                end = high if found.offset < 0 else min(found.offset, high)  # -1: nothing at or after it
            span[(topic, partition)] = (low, end)
        return span

    def read(self, span: Span, meter: Meter | None = None) -> Iterator[Message]:
        """Every record of the span, partition by partition in offset order (partitions interleaved)."""
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
            batch = self.consumer.consume(num_messages=min(BATCH, remaining), timeout=1.0)
            if batch:
                heard = time.monotonic()
            elif time.monotonic() - heard > SILENCE_S:
                left = {f"{t}[{p}]": end - position[(t, p)] for (t, p), (_, end) in todo.items()
                        if end > position[(t, p)]}
                raise LedgerUnreadable(f"no record for {SILENCE_S:.0f} s with {remaining} left to read: {left}")
            counted = 0
            for m in batch:
                if m.error():
                    continue
                tp = (m.topic(), m.partition())
                if tp not in todo or m.offset() >= todo[tp][1]:
                    continue
                counted += max(0, m.offset() + 1 - position[tp])
                position[tp] = m.offset() + 1
                yield m
            # offsets missing from a compacted or transactional log count as read once a later one arrives
            remaining = sum(end - position[tp] for tp, (_, end) in todo.items() if end > position[tp])
            meter.update(counted)

    def close(self) -> None:
        self.consumer.close()
