"""The API's producer of commands: a write is acked by the broker in time, or it never happened.

One idempotent producer (acks=all, murmur2_random) serves every request of an API process; a
poll thread hands each delivery report to the request waiting for it, so one request never
waits on another's messages. A write ends in one of two ways:

- acked, with a record timestamp (the broker's LogAppendTime on the commands topic) not
  after the command's `expiresat` (services.domain.command_expiry): it is on the ledger and will be
  acted on;
- anything else (no ack by the deadline, a delivery error, a full queue, an ack whose
  append time is after the expiry): `CommandNotWritten`, and the API answers 503. The
  command is then either not on the log or expired there, and every consumer of the
  commands topic ignores an expired command.

On a deadline the producer's queue is purged (a purged message is never sent, so the
commands waiting in it are certainly not written) and the producer is retired for a fresh
one, as it is after a fatal error (an idempotent producer that hit one refuses every later
message). A retired producer is polled until its in-flight messages are resolved, so no
request is left without an answer.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from services.adapters.kafka_client import client_config
from services.domain.command_expiry import is_expired
from services.domain.envelope import encode, headers
from services.settings import Settings

log = logging.getLogger("scanledger.commands")
POLL_S = 0.05


class Written(NamedTuple):
    timestamp: int  # ms: the broker's append time on the commands and config topics
    offset: int


class CommandNotWritten(Exception):
    """The command is not on the ledger, or is there expired: nothing will act on it."""


class _Generation:
    """One librdkafka producer and the thread that serves its delivery reports."""

    def __init__(self, config: dict[str, Any], linger_s: float):
        self.broken: str | None = None
        self.retired = threading.Event()
        self._linger_s = linger_s
        self.producer = Producer({**config, "error_cb": self._on_error})
        self._thread = threading.Thread(target=self._poll, name="command-producer", daemon=True)
        self._thread.start()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.broken = str(err)
            log.error("command producer failed fatally, a new one takes over: %s", err)

    def _poll(self) -> None:
        while not self.retired.is_set():
            self.producer.poll(POLL_S)
        # retired: serve what is in flight until it resolves (message.timeout.ms bounds it)
        self.producer.flush(self._linger_s)

    def retire(self, purge: bool) -> None:
        if self.retired.is_set():
            return
        if purge:
            try:
                self.producer.purge(in_queue=True, in_flight=False, blocking=True)
            except KafkaException as exc:  # a fatally failed producer may refuse; it sends nothing anyway
                log.warning("purging the command producer's queue: %s", exc)
        self.retired.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class CommandWriter:
    def __init__(self, settings: Settings, **overrides: Any):
        self.timeout_s = settings.command_timeout_s
        self._config = {
            **client_config(settings),
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 2,
            # librdkafka gives up on a message it could not deliver in the time the API waits for it
            "message.timeout.ms": max(int(self.timeout_s * 1000), 100),
            **overrides,
        }
        self._lock = threading.Lock()
        self._generation = _Generation(self._config, self.timeout_s + 1)

    def _current(self) -> _Generation:
        with self._lock:
            if self._generation.broken or self._generation.retired.is_set():
                self._generation.retire(purge=True)
                self._generation = _Generation(self._config, self.timeout_s + 1)
            return self._generation

    def _retire(self, generation: _Generation, purge: bool) -> None:
        """Replace the producer, unless another request did already."""
        generation.retire(purge)
        with self._lock:
            if self._generation is generation:
                self._generation = _Generation(self._config, self.timeout_s + 1)

    async def write(self, topic: str, command: dict, key: str | None = None, raw: bytes | None = None) -> Written:
        """Produce the command and wait for its ack; returns the record's timestamp (ms) and offset. `raw`: its
        bytes, already encoded (a sealed event's: services.domain.ledger_chain).

        Raises CommandNotWritten within the timeout when the command is not (validly) on the log.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(result) -> None:
            if not done.done():
                done.set_result(result)

        def on_delivery(err, msg) -> None:  # on a poll thread
            # the loop may have closed (shutdown): nobody waits for this answer any more
            with contextlib.suppress(RuntimeError):
                result = (err, None) if err else (None, Written(msg.timestamp()[1], msg.offset()))
                loop.call_soon_threadsafe(settle, result)

        value, key_bytes = raw if raw is not None else encode(command), (key or command["subject"]).encode()
        generation = None
        for _ in range(2):  # a producer found broken is replaced once
            generation = self._current()
            try:
                generation.producer.produce(topic, value=value, key=key_bytes, headers=headers(command),
                                            on_delivery=on_delivery)
                break
            except BufferError:
                raise CommandNotWritten("the command queue is full") from None
            except KafkaException as exc:
                if not exc.args[0].fatal():
                    raise CommandNotWritten(str(exc.args[0])) from None
                generation.broken = str(exc.args[0])
        else:
            raise CommandNotWritten(f"the producer failed: {generation.broken}")
        try:
            err, written = await asyncio.wait_for(asyncio.shield(done), self.timeout_s)
        except TimeoutError:
            # purge: whatever still waits in the queue is never sent, and the expiry covers
            # what was already on the wire
            await asyncio.to_thread(self._retire, generation, True)
            raise CommandNotWritten(f"the broker did not take the command within {self.timeout_s:g} s") from None
        if err is not None:
            if err.fatal():
                generation.broken = str(err)
            raise CommandNotWritten(str(err))
        if is_expired(command, written.timestamp):
            raise CommandNotWritten("the broker took the command after it expired")
        return written

    def close(self, timeout: float = 10) -> None:
        """Deliver what is queued (up to timeout), then stop polling."""
        with self._lock:
            generation = self._generation
        generation.producer.flush(timeout)
        generation.retire(purge=False)
        generation.join(timeout)
