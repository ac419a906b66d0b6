"""The projector: a consumer group over the event topics that builds the read models.

Each batch is applied and its offsets stored in one database transaction, and on every
partition assignment the consumer seeks to the offsets stored in the database (never the
ones in Kafka), so a crash between the two can neither skip nor double-apply a batch.

The same offsets are then committed to Kafka too, asynchronously, after the transaction: a mirror
for Kafka's tools to show the group's lag, never read back (the database stays the truth).

A poison record (one `services.domain.codec.decode_checked` refuses, or whose apply raises) is
sent to the dead-letter topic and stands in its batch as a placeholder that applies nothing
but stores its offset, in the same transaction as the good records around it. A batch whose
apply raises is rolled back and applied again in halves, each in a savepoint, a failing half
halved again down to the one record that fails (a few dozen applies for one bad record in
20,000, not 20,000), so only the bad record is refused; the offsets are stored once, at the end
(a row updated 20,000 times in one PostgreSQL transaction costs more each time). The dead letters
are flushed (acked) before the
transaction that skips them commits: at-least-once into the dead-letter topic. A database
error (locked, I/O, schema) is no record's fault: it stops the projector, to be restarted.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from services import stores
from services.adapters.db import DATABASE_ERRORS, RECORD_ERRORS, connect, transaction
from services.adapters.deadletter import DeadLetters, dead_lettered
from services.adapters.kafka import DeliveryFailed, Publisher, consumer_config
from services.adapters.kafka_admin import ensure_topics, watermarks
from services.domain.codec import PoisonRecord
from services.domain.contracts import CONFIG_CHANGED, SCAN_ABORTED, SCAN_FINISHED, SCAN_STARTED
from services.gc_pause import gc_paused
from services.readmodels.apply import Record, apply_batch, decode_record, next_offsets, store_offsets
from services.settings import Settings
from services.stores import config_log

log = logging.getLogger("scanledger.projector")
PROJECTOR_CONSUMER, REPLAY_CONSUMER = "projector", "replay"  # their dl.consumer names
BATCH = 20000  # events per transaction at most
POLL_S = 0.05  # consume() waits this long for a full batch: the read models lag a busy log by at most this
# The broker answers a fetch once this much is there (or after fetch.wait.max.ms, 50 ms): in a scan,
# fewer and fuller fetches than one per few records cost the broker about 0.25 CPU-s less per 1M scan.
FETCH_MIN_BYTES = 256 * 1024


def topics(settings: Settings) -> list[str]:
    # commands too: a RunScan is a pending scan until the coordinator requests it (scan_requests.run_scan);
    # config: the configuration tables follow its changes (services.stores.config_log)
    return [settings.topics.commands, settings.topics.scan_events, settings.topics.violations, settings.topics.findings,
            settings.topics.config]


def apply_all(conn, records: list[Record], offsets: bool = True) -> None:
    """A batch's config changes, then everything else and (unless told not to) every offset, in the
    caller's transaction."""
    config_log.apply(conn, [rec for rec in records if rec.type == CONFIG_CHANGED])
    apply_batch(conn, records, offsets)


def placeholder(topic: str, partition: int, offset: int) -> Record:
    """Stands for a refused record in its batch: no type, so apply_batch only stores its offset."""
    return Record(topic, partition, offset, None, {})


def to_records(messages, dead: DeadLetters) -> tuple[list[Record], list]:
    """The records of a batch and, index for index, their messages; a record decode_checked
    refuses is dead-lettered (not yet flushed) and becomes a placeholder."""
    records, sources = [], []
    for m in messages:
        if m.error():
            log.warning("consumer error: %s", m.error())
            continue
        try:
            records.append(decode_record(m))
        except PoisonRecord as exc:
            dead.send_message(m, exc)
            records.append(placeholder(m.topic(), m.partition(), m.offset()))
        sources.append(m)
    return records, sources


def stored_offsets(conn) -> dict[tuple[str, int], int]:
    return {(r["topic"], r["partition"]): r["next_offset"]
            for r in conn.execute("SELECT topic, partition, next_offset FROM projector_offsets")}


def lagging(stored: dict[tuple[str, int], int],
            marks: dict[tuple[str, int], tuple[int, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (position, end) of the partitions with records the projector has not
    applied: its position is the offset stored in the database, or the log start if none is."""
    out = {}
    for tp, (low, high) in marks.items():
        position = max(stored.get(tp, low), low)
        if high > position:
            out[tp] = (position, high)
    return out


def stuck_consumer(settings: Settings, conn, assigned: set[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    """The partitions of this instance's assignment left to apply (another projector's are its own
    business), asked with a client of its own (empty if the broker does not answer: an outage, not a
    stuck consumer)."""
    try:
        marks = watermarks(settings, topics(settings))
    except Exception:
        return {}
    return lagging(stored_offsets(conn), {tp: m for tp, m in marks.items() if tp in assigned})


def apply_messages(conn, messages, dead: DeadLetters) -> int:
    return apply_records(conn, *to_records(messages, dead), dead)


def commit_to_kafka(consumer: Consumer, records: list[Record]) -> None:
    """Tell Kafka the offsets the database transaction just committed (the offset after each partition's
    last record of the batch), so the group's lag shows in Kafka's own tools (kafka-consumer-groups.sh,
    Burrow, exporters). Only a mirror: on assignment the projector seeks to the offsets in the database,
    so a commit lost here (asynchronous, a rebalance, a crash) costs nothing but a stale figure until the
    next batch. From the records, not the messages: four calls into a Message each cost more."""
    offsets = [TopicPartition(topic, partition, offset)
               for (topic, partition), offset in sorted(next_offsets(records).items())]
    if not offsets:
        return
    try:
        consumer.commit(offsets=offsets, asynchronous=True)
    except Exception as exc:  # no coordinator right now: the next batch commits again
        log.debug("offsets not committed to Kafka: %s", exc)


def log_scans(conn, records: list[Record]) -> None:
    """One log line per scan started and per scan finished (completed, failed, partial or aborted), once
    its batch is committed: what an operator greps or a log pipeline counts (services/logs.py)."""
    for rec in records:
        if rec.type not in (SCAN_STARTED, SCAN_FINISHED, SCAN_ABORTED):
            continue
        data = rec.event.get("data", {})
        row = conn.execute("SELECT kind, workspace_id FROM rm_scans WHERE scan_id = ?",
                           (data.get("scan_id"),)).fetchone()
        fields = {"scan_id": data.get("scan_id"), "kind": row["kind"] if row else None,
                  "workspace_id": row["workspace_id"] if row else rec.event.get("workspaceid")}
        if rec.type == SCAN_STARTED:
            fields.update(units=len(data.get("units", [])), record_total=data.get("record_total"))
            log.info("scan started: %s (%s)", fields["scan_id"], fields["kind"], extra={"scan": "started", **fields})
        else:
            fields.update(status=data.get("status", "aborted"), record_count=data.get("record_count"),
                          violation_count=data.get("violation_count"))
            log.info("scan finished: %s (%s) %s", fields["scan_id"], fields["kind"], fields["status"],
                     extra={"scan": "finished", **fields})


def record_fault(exc: BaseException) -> bool:
    """Whether an apply error is the record's (bad values) rather than the database's or Kafka's."""
    if isinstance(exc, RECORD_ERRORS):
        return True  # a NULL in a NOT NULL column, a value the database cannot bind
    return not isinstance(exc, (*DATABASE_ERRORS, DeliveryFailed, MemoryError, OSError))


def apply_records(conn, records: list[Record], sources: list, dead: DeadLetters) -> int:
    """Apply a batch in one transaction with its offsets; its poison records go to the
    dead-letter topic, acked before the transaction commits."""
    if not records:
        return 0
    if dead.pending:
        dead.flush()  # refused by decode_checked: on the dead-letter topic before their offsets commit
    try:
        with transaction(conn):
            apply_all(conn, records)
    except Exception as exc:
        if not record_fault(exc):
            raise
        log.warning("a batch of %d records failed (%s: %s): applying it in halves to refuse only the bad records",
                    len(records), type(exc).__name__, exc)
        with transaction(conn):
            for half in _halves(list(zip(records, sources, strict=True))):
                _apply_bisecting(conn, half, dead)
            store_offsets(conn, records)  # the refused records' too: they are dead letters, not to read again
            if dead.pending:
                dead.flush()  # before COMMIT stores the offsets that skip them
    return len(records)


def _halves(part: list) -> list[list]:
    return [part[:len(part) // 2], part[len(part) // 2:]] if len(part) > 1 else [part]


def _apply_bisecting(conn, part: list[tuple[Record, object]], dead: DeadLetters) -> None:
    """Apply records in a savepoint; if that raises for a record's fault, each half of them likewise, in
    order, until the one record that fails alone is dead-lettered. Offsets are the caller's to store."""
    conn.execute("SAVEPOINT part")
    try:
        apply_all(conn, [rec for rec, _ in part], offsets=False)
    except Exception as exc:
        conn.execute("ROLLBACK TO part")
        conn.execute("RELEASE part")
        if not record_fault(exc):
            raise
        if len(part) == 1:
            dead.send_message(part[0][1], exc)
            return
        for half in _halves(part):
            _apply_bisecting(conn, half, dead)
    else:
        conn.execute("RELEASE part")


def _step(consumer: Consumer, conn, dead: DeadLetters) -> int:
    """Consume a batch, apply it, tell Kafka and the log. Called with the collector paused: the batch is
    freed when this returns, before the collector is back on, so its first pass does not scan it all."""
    messages = consumer.consume(num_messages=BATCH, timeout=POLL_S)
    records, sources = to_records(messages, dead)
    applied = apply_records(conn, records, sources, dead)
    if applied:
        commit_to_kafka(consumer, records)
        log_scans(conn, records)
    return applied


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    try_ensure_topics(settings)
    conn = connect(settings.db_url)
    stores.init(conn)  # the schema this code knows (services.stores.migrations)
    consumer = Consumer(consumer_config(settings, settings.projector_group, **{"fetch.min.bytes": FETCH_MIN_BYTES}))
    dead = DeadLetters(Publisher(settings), PROJECTOR_CONSUMER, settings)

    def on_assign(c, partitions):
        offsets = stored_offsets(conn)
        for tp in partitions:
            tp.offset = offsets.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        c.assign(partitions)

    consumer.subscribe(topics(settings), on_assign=on_assign)
    log.info("projector consuming %s into %s", topics(settings), settings.db_url)
    # A consumer that applied nothing for twice the stall window while its topics have records
    # left is stuck (librdkafka can lose every broker in a broker's controlled shutdown and never
    # reconnect: docs/decisions.md): the process exits and its supervisor starts a fresh one.
    stuck_after = 2 * settings.stall_s
    progress = time.monotonic()
    try:
        while not stop.is_set():
            with gc_paused():
                applied = _step(consumer, conn, dead)
            if applied:
                progress = time.monotonic()
            elif time.monotonic() - progress >= stuck_after:
                left = stuck_consumer(settings, conn, {(tp.topic, tp.partition) for tp in consumer.assignment()})
                if left:
                    log.error("the projector applied nothing for %.0f s while %d partitions have records left "
                              "(%s): its consumer is stuck; exiting for a fresh one", stuck_after, len(left),
                              dict(list(left.items())[:3]))
                    conn.close()
                    os._exit(3)  # not consumer.close(): a stuck consumer may not return
                progress = time.monotonic()  # caught up (or the broker is away): idle is fine
    finally:
        consumer.close()
        conn.close()


def try_ensure_topics(settings: Settings) -> None:
    """The dead-letter topic must exist before a poison record is sent to it."""
    try:
        ensure_topics(settings)
    except Exception as exc:  # no broker yet: the consumer waits for it; a failed dead letter stops us
        log.warning("could not create the topics: %s", exc)


def run_forever(settings: Settings) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, stop)


def replay_dead_letters(settings: Settings) -> DeadLetters:
    """A replay's refusals: sent to the dead-letter topic unless the projector or a replay sent them before."""
    return DeadLetters(Publisher(settings), REPLAY_CONSUMER, settings,
                       skip=lambda: dead_lettered(settings, (PROJECTOR_CONSUMER, REPLAY_CONSUMER)))
