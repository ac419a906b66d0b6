"""Kafka at the edge: topic creation, the idempotent publisher, consumer settings, health.

Every producer uses partitioner=murmur2_random, the Java client's (and aiokafka's, which
Faust uses) partitioner, so a scan id lands on the same partition whoever writes it and
the coordinator's table stays co-partitioned with commands and scan events.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from services.domain.envelope import encode, headers
from services.settings import Settings

WEEK_MS = 7 * 24 * 3600 * 1000
COMMAND_TIMESTAMPS = {"message.timestamp.type": "LogAppendTime"}


def topic_specs(settings: Settings) -> list[NewTopic]:
    t, rf = settings.topics, settings.replication_factor
    forever = {"retention.ms": "-1", "cleanup.policy": "delete"}
    week = {"retention.ms": str(WEEK_MS), "cleanup.policy": "delete"}
    return [
        # records carry the broker's append time: services.domain.commands.is_expired judges by it
        NewTopic(t.commands, settings.commands_partitions, rf, config={**week, **COMMAND_TIMESTAMPS}),
        NewTopic(t.scan_events, settings.events_partitions, rf, config=forever),
        NewTopic(t.work, settings.work_partitions, rf, config=week),
        NewTopic(t.violations, settings.violations_partitions, rf, config=forever),
        NewTopic(t.findings, settings.violations_partitions, rf, config=forever),
        NewTopic(t.dead_letter, settings.dead_letter_partitions, rf, config=forever),
    ]


def admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap_servers})


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
    return NewTopic(settings.table_changelog, settings.events_partitions, settings.replication_factor,
                    config={"cleanup.policy": "compact"})


class DeliveryFailed(Exception):
    pass


class Publisher:
    """acks=all, idempotent producer of CloudEvents; flush() raises if anything was lost."""

    def __init__(self, settings: Settings, **overrides: Any):
        config = {
            "bootstrap.servers": settings.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 2,
            "compression.type": "lz4",
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
        }
        config.update(overrides)
        self._producer = Producer(config)
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            with self._lock:
                self._errors.append(str(err))

    def publish(self, topic: str, event: dict, key: str | None = None) -> None:
        value = encode(event)
        key_bytes = (key or event["subject"]).encode()
        while True:
            try:
                self._producer.produce(topic, value=value, key=key_bytes, headers=headers(event),
                                       on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def publish_raw(self, topic: str, value: bytes | None, key: bytes | None,
                    headers: list[tuple[str, bytes]] | None = None) -> None:
        """Produce bytes as they are (the dead-letter topic keeps a poison record unchanged)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 60) -> None:
        remaining = self._producer.flush(timeout)
        with self._lock:
            errors, self._errors = self._errors, []
        if remaining or errors:
            raise DeliveryFailed(f"{remaining} messages undelivered; errors: {errors[:3]}")

    async def flush_async(self, timeout: float = 60) -> None:
        await asyncio.to_thread(self.flush, timeout)


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    config = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 50,
        "session.timeout.ms": 10000,  # a crashed projector's partitions are reassigned after 10 s
        "heartbeat.interval.ms": 3000,
    }
    config.update(overrides)
    return config


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


def group_lag(settings: Settings, group_id: str, partitions: list[tuple[str, int]],
              timeout: float = 5) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (committed, end) for the group's partitions that have records left.

    A partition with no commit counts from the log start. Read with a consumer that never
    subscribes, so it does not join (or disturb) the group.
    """
    if not partitions:
        return {}
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group_id,
                         "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
        lag = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            position = tp.offset if tp.offset >= 0 else low
            if high > max(position, low):
                lag[(tp.topic, tp.partition)] = (max(position, low), high)
        return lag
    finally:
        consumer.close()


def watermarks(settings: Settings, topics: list[str], timeout: float = 5) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (low, high) offsets of every partition of these topics."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "scanledger-watermarks"})
    try:
        metadata = consumer.list_topics(timeout=timeout)
        return {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                for topic in topics if topic in metadata.topics for p in metadata.topics[topic].partitions}
    finally:
        consumer.close()
