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

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Message, TopicPartition

from services.adapters.kafka import consumer_config
from services.settings import Settings

BATCH = 10_000
EARLIEST, LATEST = OFFSET_BEGINNING, OFFSET_END  # as ListOffsets timestamps: the log's start, its end
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
                                                    "max.partition.fetch.bytes": 8 << 20,
                                                    "auto.offset.reset": "earliest"}))
        self._partitions: dict[str, list[int]] | None = None

    def partitions(self, topic: str) -> list[int]:
        if self._partitions is None:  # one metadata round trip for every topic, once per reader
            topics = self.consumer.list_topics(timeout=10).topics
            self._partitions = {name: sorted(t.partitions) for name, t in topics.items() if not t.error}
        return self._partitions.get(topic, [])

    def ends(self, tps: list[tuple[str, int]], as_of_ms: int | None = None, since_ms: int | None = None) -> Span:
        """Where a read of each partition starts and stops: from its start (or `since_ms`: the first record
        stamped at or after it) to its current end (or `as_of_ms`: the first record stamped at or after
        that instant). A record's stamp is its timestamp: the broker's on the commands topic. One
        ListOffsets request per question for all the partitions (a round trip per partition made an
        as-of answer wait a second on them alone)."""
        if not tps:
            return {}
        low, high = self._offsets(tps, EARLIEST), self._offsets(tps, LATEST)
        end = high if as_of_ms is None else self._offsets(tps, as_of_ms, high)
        start = low if since_ms is None else self._offsets(tps, since_ms, high)
        return {tp: (min(max(start[tp], low[tp]), end[tp]), end[tp]) for tp in tps}

    def _offsets(self, tps: list[tuple[str, int]], ms: int,
                 none_after: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
        """Per partition, the first offset stamped at or after `ms` (EARLIEST, LATEST: the log's start, its
        end); where nothing is, `none_after`'s offset (the end)."""
        found = self.consumer.offsets_for_times([TopicPartition(t, p, ms) for t, p in tps], timeout=10)
        out = {}
        for f in found:
            if f.error:
                raise KafkaException(f.error)
            tp, offset = (f.topic, f.partition), f.offset
            if none_after is not None:
                offset = none_after[tp] if offset < 0 else min(offset, none_after[tp])
            out[tp] = offset
        return out

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
        # Each partition from the offset the span starts at, 0 too: OFFSET_BEGINNING made librdkafka ask the
        # leader for it, and a leader not known yet (a fresh reader: a replay helper's) put the question off
        # by 500 ms. A start that retention has deleted meanwhile reads from the log's start (the reset).
        self.consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in todo.items()])
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
                tp, after = (m.topic(), m.partition()), m.offset() + 1
                if tp not in todo or after > todo[tp][1]:
                    continue  # written after the read began (or after its as-of time): not this read's
                counted += max(0, after - position[tp])
                position[tp] = after
                kept.append(m)
            if kept:
                yield kept
            # offsets missing from a compacted or transactional log count as read once a later one arrives
            remaining = sum(end - position[tp] for tp, (_, end) in todo.items() if end > position[tp])
            meter.update(counted)

    def close(self) -> None:
        self.consumer.close()
