"""The projector: a consumer group over the event topics that builds the read models.

Each batch is applied and its offsets stored in one database transaction, and on every
partition assignment the consumer seeks to the offsets stored in the database (never the
ones in Kafka), so a crash between the two can neither skip nor double-apply a batch.
"""
from __future__ import annotations

import logging
import signal
import threading

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from projections import schema
from projections.apply import Record, apply_batch, needs_timestamp
from services.db import connect, transaction
from services.envelope import decode
from services.kafka import consumer_config
from services.settings import Settings

log = logging.getLogger("scanledger.projector")
BATCH = 20000  # events per transaction at most
POLL_S = 0.05  # consume() waits this long for a full batch: the read models lag a busy log by at most this


def topics(settings: Settings) -> list[str]:
    # commands too: a RunScan is a pending scan until the coordinator requests it (apply.run_scan)
    return [settings.topics.commands, settings.topics.scan_events, settings.topics.violations]


def to_records(messages) -> list[Record]:
    records = []
    for m in messages:
        if m.error():
            log.warning("consumer error: %s", m.error())
            continue
        event = decode(m.value())  # every event is applied, so its type comes from the body, not the header
        records.append(Record(m.topic(), m.partition(), m.offset(), event.get("type"), event,
                              m.timestamp()[1] if needs_timestamp(event) else None))
    return records


def stored_offsets(conn) -> dict[tuple[str, int], int]:
    return {(r["topic"], r["partition"]): r["next_offset"]
            for r in conn.execute("SELECT topic, partition, next_offset FROM projector_offsets")}


def apply_messages(conn, messages) -> int:
    return apply_records(conn, to_records(messages))


def apply_records(conn, records: list[Record]) -> int:
    if records:
        with transaction(conn):
            apply_batch(conn, records)
    return len(records)


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    conn = connect(settings.db_url)
    schema.create(conn)
    consumer = Consumer(consumer_config(settings, settings.projector_group))

    def on_assign(c, partitions):
        offsets = stored_offsets(conn)
        for tp in partitions:
            tp.offset = offsets.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        c.assign(partitions)

    consumer.subscribe(topics(settings), on_assign=on_assign)
    log.info("projector consuming %s into %s", topics(settings), settings.db_url)
    try:
        while not stop.is_set():
            apply_messages(conn, consumer.consume(num_messages=BATCH, timeout=POLL_S))
    finally:
        consumer.close()
        conn.close()


def run_forever(settings: Settings) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, stop)


def replay(settings: Settings, db_url: str | None = None) -> int:
    """Drop the read models and rebuild them from offset zero up to the current end of the log.

    Run it with the projector stopped (or into another database with `db_url`). Returns the
    number of events applied.
    """
    conn = connect(db_url or settings.db_url)
    with transaction(conn):
        schema.drop(conn)
    schema.create(conn)
    # A replay that dies half-way is simply run again, so it need not wait for fsync.
    conn.execute("PRAGMA synchronous=OFF")
    consumer = Consumer(consumer_config(settings, f"{settings.projector_group}-replay",
                                        **{"fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 8 << 20}))
    end: dict[tuple[str, int], int] = {}
    assignment = []
    metadata = consumer.list_topics(timeout=10)
    for topic in topics(settings):
        for partition in metadata.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > 0:
                end[(topic, partition)] = high
                assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
    consumer.assign(assignment)
    position: dict[tuple[str, int], int] = {}
    applied = 0
    try:
        while (remaining := sum(high - position.get(tp, 0) for tp, high in end.items())) > 0:
            # ask for no more than is left, or consume() waits out its timeout for a full batch
            batch = consumer.consume(num_messages=min(BATCH, remaining), timeout=0.1)
            records = [r for r in to_records(batch)
                       if r.offset < end[(r.topic, r.partition)]]  # events written after the replay began wait
            for r in records:
                position[(r.topic, r.partition)] = r.offset + 1
            applied += apply_records(conn, records)
    finally:
        consumer.close()
        conn.close()
    return applied
