"""Handling one consumed record, whichever consumer feeds it: decode, run until written.

At-least-once, strictly: the caller acks a record only once `RecordHandling.process`
returned. A record that cannot be decoded (`decode_checked`) or that its handler cannot
handle goes to the dead-letter topic (flushed there first); a command appended after its
expiry is ignored (the API answered 503 for it, so it never happened); a handler that could
not write the ledger (`DeliveryFailed`, `KafkaException`) or read a blob from a store that did
not answer (`BlobUnavailable`: S3 down) is run again with backoff, never skipped.
`Activity` counts what is in flight, for the stall watchdog.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

from confluent_kafka import KafkaException

from services.adapters.blobstore import BlobUnavailable
from services.adapters.deadletter import DeadLetters
from services.adapters.kafka import DeliveryFailed
from services.domain.codec import PoisonRecord, decode_checked
from services.domain.command_expiry import is_expired
from services.domain.ledger_chain import digest

log = logging.getLogger("scanledger.streams")
RETRY_MAX_S = 10.0

Handler = Callable[[dict, str], Awaitable[None]]  # the message, its record's digest (services.domain.ledger_chain)


@dataclass(frozen=True)
class Record:
    """What the pipeline reads of a consumed record; `source` is what a dead letter copies
    (a Faust `Message` or a confluent-kafka `Message`: see `DeadLetters.send_message`)."""
    value: bytes | None
    headers: Any
    topic: str
    timestamp_ms: int | None
    source: Any


class Activity:
    """What the worker is doing, for the stall watchdog."""

    def __init__(self) -> None:
        self.busy = 0
        self.last = time.monotonic()

    def __enter__(self) -> Self:
        self.busy += 1
        return self

    def __exit__(self, *_) -> None:
        self.busy -= 1
        self.last = time.monotonic()


class RecordHandling:
    def __init__(self, dead_letters: DeadLetters, commands_topic: str, activity: Activity | None = None,
                 retry_max_s: float = RETRY_MAX_S) -> None:
        self.dead_letters = dead_letters
        self.commands_topic = commands_topic
        self.activity = activity or Activity()
        self.retry_max_s = retry_max_s

    async def process(self, record: Record, handler: Handler) -> None:
        """Returns once the record was handled (or dead-lettered): then, and only then, ack it."""
        with self.activity:
            try:
                message = decode_checked(record.value, record.headers)
            except PoisonRecord as exc:
                await self._dead_letter(record, exc)
            else:
                if self._expired(record, message):  # the API answered 503 for it: it never happened
                    log.info("ignoring %s %s: appended after its expiry", message["type"], message["id"])
                else:
                    await self._until_written(handler, message, record)

    def _expired(self, record: Record, message: dict) -> bool:
        return record.topic == self.commands_topic and is_expired(message, record.timestamp_ms)

    async def _until_written(self, handler: Handler, message: dict, record: Record) -> None:
        """Retry while the ledger cannot be written: the record is acked only once it was."""
        delay, raw_digest = min(0.5, self.retry_max_s), digest(record.value)
        while True:
            try:
                return await handler(message, raw_digest)
            except (DeliveryFailed, KafkaException) as exc:
                log.warning("could not write what %s caused, retrying in %.1fs: %s", message["type"], delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
            except BlobUnavailable as exc:
                log.warning("the blob store did not answer for %s, retrying in %.1fs: %s", message["type"], delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
            except Exception as exc:  # a record the code cannot handle must not halt the worker
                log.exception("could not handle %s %s", message["type"], message["id"])
                await self._dead_letter(record, exc)
                return

    async def _dead_letter(self, record: Record, exc: Exception) -> None:
        """On the dead-letter topic (acked there) before the record is acked here."""
        self.dead_letters.send_message(record.source, exc)
        while True:
            try:
                return await self.dead_letters.flush_async()
            except (DeliveryFailed, KafkaException) as err:
                log.warning("could not write a dead letter, retrying: %s", err)
                await asyncio.sleep(self.retry_max_s / 2)
