"""What the harness reads off the running system by itself, to compare, time and explain (never to
change it): the tail of a process log, the settings a process runs with, a Kafka topic's records,
end offsets and the streams group's lag, a read-only SQLite connection and the projector's stored
offsets against the end of the log."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from harness import databases
from services.settings import Settings, Topics

# --------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    if os.environ.get("SCANLEDGER_FAULT_VERBOSE"):
        print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tail(path: Path, chars: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def log_tail(path: Path, chars: int = 4000) -> str:
    """The end of a process log without librdkafka's connection chatter and Faust's one-character
    traceback lines (a broker that is down on purpose fills logs with both)."""
    keep = [line for line in tail(path, 40 * chars).splitlines()
            if "rdkafka#" not in line and not re.search(r"\[WARNING\] .{0,3}$", line)]
    return "\n".join(keep)[-chars:]


def kafka_settings(env: dict) -> Settings:
    return Settings(data_dir=Path(env["SCANLEDGER_DATA_DIR"]),
                    kafka_bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
                    broker_port=int(env.get("SCANLEDGER_BROKER_PORT") or 9092),
                    topics=Topics(env.get("SCANLEDGER_TOPIC_PREFIX") or "scanledger"))


# These reads deliberately duplicate services/adapters/kafka.py's: the oracle is independent of the code under test.

# The harness's own Kafka clients say nothing: a broker the test stopped on purpose is not news.
QUIET = {"log_level": 0, "log.connection.close": False}


def _consumer(settings: Settings, **extra) -> Consumer:
    return Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"faults-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "enable.partition.eof": False, "auto.offset.reset": "earliest",
                     "fetch.wait.max.ms": 20, **QUIET, **extra})


def partitions(settings: Settings, topic: str) -> list[int]:
    consumer = _consumer(settings)
    try:
        return sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()


def watermarks(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = _consumer(settings)
    try:
        metadata = consumer.list_topics(timeout=10)
        out = {}
        for topic in topics:
            if topic not in metadata.topics:
                continue
            for p in metadata.topics[topic].partitions:
                out[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, timeout_s: float = 60):
    """Every record of a topic up to its current end: (partition, offset, timestamp_ms, headers, key, value)."""
    ends = {p: h for (t, p), h in watermarks(settings, [topic]).items() if h > 0}
    out = []
    if not ends:
        return out
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        position = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout_s
        while any(position[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.2):
                if m.error():
                    continue
                position[m.partition()] = m.offset() + 1
                if m.offset() < ends[m.partition()]:
                    out.append((m.partition(), m.offset(), m.timestamp()[1], m.headers() or [], m.key(), m.value()))
    finally:
        consumer.close()
    return out


def streams_lag(settings: Settings) -> str:
    """Committed offsets of the streams group against the end of each topic, where they differ."""
    topics = [settings.topics.commands, settings.topics.scan_events, settings.topics.work]
    try:
        ends = watermarks(settings, topics)
        consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.streams_group,
                             "enable.auto.commit": False, **QUIET})
        try:
            committed = consumer.committed([TopicPartition(t, p) for (t, p) in ends], timeout=10)
        finally:
            consumer.close()
        lines = []
        for tp in committed:
            end = ends[(tp.topic, tp.partition)]
            if end > max(tp.offset, 0):
                committed = tp.offset if tp.offset >= 0 else "none"
                lines.append(f"{tp.topic}[{tp.partition}] committed={committed} end={end}")
        members = ""
        with contextlib.suppress(Exception):
            admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **QUIET})
            desc = admin.describe_consumer_groups([settings.streams_group])[settings.streams_group].result(timeout=5)
            members = f"group {settings.streams_group}: state={desc.state} members={len(desc.members)}\n"
        return members + ("\n".join(lines) or "no lag")
    except Exception as exc:  # the report must not hide the failure it reports
        return f"(lag unavailable: {exc})"


def connect_ro(where):
    """A system's database, to read: its URL (target.db_url) or an SQLite file."""
    return databases.connect_read(where)


def projected_topics(settings: Settings) -> list[str]:
    """The topics the projector builds the read models from (findings: a sensitive-data scan's)."""
    t = settings.topics
    return [t.commands, t.scan_events, t.violations, t.findings, t.config]


def projector_lag(settings: Settings, db_url: str) -> dict[tuple[str, int], tuple[int, int]]:
    """(stored next offset, end) of every partition the projector reads and has not caught up with."""
    ends = watermarks(settings, projected_topics(settings))
    conn = connect_ro(db_url)
    try:
        stored = {(r["topic"], r["partition"]): r["next_offset"]
                  for r in conn.execute("SELECT topic, partition, next_offset FROM projector_offsets")}
    finally:
        conn.close()
    return {tp: (stored.get(tp, 0), end) for tp, end in ends.items() if stored.get(tp, 0) < end}
