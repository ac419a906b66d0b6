"""Kafka's administration and health: the topics (created with their settings), and what the
processes' health reads of the broker: does it answer, does a group have members, how far behind it is.
"""
from __future__ import annotations

import logging

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from services.adapters.kafka_client import client_config
from services.settings import Settings

log = logging.getLogger("scanledger.kafka")

WEEK_MS = 7 * 24 * 3600 * 1000
COMMAND_TIMESTAMPS = {"message.timestamp.type": "LogAppendTime"}


def topic_specs(settings: Settings) -> list[NewTopic]:
    t, rf = settings.topics, settings.replicas
    isr = {"min.insync.replicas": str(settings.min_insync)}
    forever = {"retention.ms": "-1", "cleanup.policy": "delete", **isr}
    week = {"retention.ms": str(WEEK_MS), "cleanup.policy": "delete", **isr}
    return [
        # records carry the broker's append time: services.domain.command_expiry.is_expired judges by it
        NewTopic(t.commands, settings.commands_partitions, rf, config={**week, **COMMAND_TIMESTAMPS}),
        NewTopic(t.scan_events, settings.events_partitions, rf, config=forever),
        NewTopic(t.work, settings.work_partitions, rf, config=week),
        NewTopic(t.violations, settings.violations_partitions, rf, config=forever),
        NewTopic(t.findings, settings.violations_partitions, rf, config=forever),
        # one partition: the config's changes in the order they were committed; append time: a config
        # change, like a command, carries an expiry it is judged by (services.domain.command_expiry)
        NewTopic(t.config, 1, rf, config={**forever, **COMMAND_TIMESTAMPS}),
        NewTopic(t.dead_letter, settings.dead_letter_partitions, rf, config=forever),
    ]


def admin(settings: Settings) -> AdminClient:
    # librdkafka's notices, warnings and errors, not its info lines: `up` would print "Purging 1 unserved events
    # from background queue" for every client it closes, on a stderr that carries only what to fix
    return AdminClient(client_config(settings, log_level=5))


def ensure_topics(settings: Settings, timeout: float = 30) -> None:
    """Create our topics with their configs; topics that exist already are left as they are."""
    client = admin(settings)  # must outlive the futures: a collected client cancels them
    specs = [*topic_specs(settings), table_changelog_spec(settings)]
    futures = client.create_topics(specs, operation_timeout=timeout, request_timeout=timeout)
    for _name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    ensure_command_timestamps(client, settings, timeout)


def ensure_command_timestamps(client: AdminClient, settings: Settings, timeout: float = 30) -> None:
    """A commands topic made before commands expired gets the broker's append time too (idempotent)."""
    resource = ConfigResource(ResourceType.TOPIC, settings.topics.commands, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in COMMAND_TIMESTAMPS.items()])
    for future in client.incremental_alter_configs([resource], request_timeout=timeout).values():
        future.result()


def table_changelog_spec(settings: Settings) -> NewTopic:
    """The coordinator table's changelog, made before any worker starts: one that Faust finds
    with no partitions yet ends the worker in PartitionsMismatch."""
    return NewTopic(settings.table_changelog, settings.events_partitions, settings.replicas,
                    config={"cleanup.policy": "compact", "min.insync.replicas": str(settings.min_insync)})


def group_has_members(settings: Settings, group_id: str, timeout: float = 3) -> bool:
    """Whether a consumer group has live members (how /healthz knows a process is up)."""
    client = admin(settings)
    futures = client.describe_consumer_groups([group_id], request_timeout=timeout)
    try:
        description = futures[group_id].result(timeout=timeout)
    except Exception:
        return False
    return len(description.members) > 0


def broker_answers(settings: Settings, timeout: float = 3) -> bool:
    try:
        admin(settings).list_topics(timeout=timeout)
        return True
    except Exception:
        return False


def group_lag(settings: Settings, group_id: str, partitions: list[tuple[str, int]], timeout: float = 5,
              marks: dict[tuple[str, int], tuple[int, int]] | None = None) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (committed, end) for the group's partitions that have records left.

    A partition with no commit counts from the log start. Read with a consumer that never
    subscribes, so it does not join (or disturb) the group. `marks`: the partitions' (low, high)
    offsets when the caller has just read them (watermarks()), else read here.
    """
    if not partitions:
        return {}
    consumer = Consumer(client_config(settings, **{"group.id": group_id, "enable.auto.commit": False}))
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
        marks = marks if marks is not None else offsets(consumer, committed, timeout)
        lag = {}
        for tp in committed:
            low, high = marks[(tp.topic, tp.partition)]
            position = tp.offset if tp.offset >= 0 else low
            if high > max(position, low):
                lag[(tp.topic, tp.partition)] = (max(position, low), high)
        return lag
    finally:
        consumer.close()


def watermarks(settings: Settings, topics: list[str], timeout: float = 5) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (low, high) offsets of every partition of these topics."""
    consumer = Consumer(client_config(settings, **{"group.id": "scanledger-watermarks"}))
    try:
        metadata = consumer.list_topics(timeout=timeout)
        return offsets(consumer, [TopicPartition(topic, p) for topic in topics if topic in metadata.topics
                                  for p in metadata.topics[topic].partitions], timeout)
    finally:
        consumer.close()


def offsets(consumer: Consumer, partitions: list[TopicPartition],
            timeout: float) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (low, high), what get_watermark_offsets answers (the consumer's isolation level
    decides `high`), in one ListOffsets request a leader for the starts and one for the ends: a call a
    partition is two round trips, and /healthz asked about ~75 partitions that way (~340 ms)."""
    if not partitions:
        return {}

    def at(which: int) -> dict[tuple[str, int], int]:  # which: a ListOffsets timestamp, the start or the end
        found = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, which) for tp in partitions],
                                           timeout=timeout)
        return {(f.topic, f.partition): _offset(f) for f in found}

    low, high = at(OFFSET_BEGINNING), at(OFFSET_END)
    return {tp: (low[tp], high[tp]) for tp in low}


def _offset(found: TopicPartition) -> int:
    if found.error:
        raise KafkaException(found.error)
    return found.offset
