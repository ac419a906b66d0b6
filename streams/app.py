"""The Faust streams app: the coordinator and evaluator agents.

The agents only move messages; every decision is made in services/ (lifecycle, planning,
evaluation). Our CloudEvents topics are read as raw bytes and decoded with our own orjson
codec so no Faust record metadata ever reaches them; events are written with the shared
idempotent confluent-kafka publisher and flushed before a record is acked.

At-least-once, strictly: streams run with Faust's acks off and a record is acked only once
its handler has succeeded (Faust acks in a `finally`, so a handler that raised or was
cancelled at shutdown would otherwise be committed past). A produce that fails is retried,
never skipped; a record that cannot be decoded or handled goes to the dead-letter topic.
Faust's own commit and recovery bugs are fixed in streams/faust_fixes.py; two watchdogs
(services/watchdog.py) make sure an unknown bug still cannot leave a scan stuck.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import faust
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaException

from services import contracts as c
from services import lifecycle
from services.abort_watch import AbortWatch
from services.blobstore import BlobStore
from services.commands import is_expired
from services.deadletter import DeadLetters, PoisonRecord, decode_checked
from services.envelope import header_type, utcnow
from services.evaluation import unit_result_event
from services.kafka import DeliveryFailed, Publisher, group_lag
from services.settings import Settings
from services.target_runner import run_target_unit
from services.unit_runner import plan_scan, run_unit, work_events
from services.watchdog import Reoffers, StallWatch
from streams import faust_fixes

log = logging.getLogger("scanledger.streams")
EVALUATORS = 2  # units evaluated at once per worker (pyarrow releases the GIL)
RETRY_MAX_S = 10.0
WATCH_EVERY_S = 5.0
MAX_OFFERS = 3  # a unit re-offered this often without a sign of life fails, so its scan can end


class Activity:
    """What the worker is doing, for the stall watchdog."""

    def __init__(self) -> None:
        self.busy = 0
        self.last = time.monotonic()

    def __enter__(self) -> "Activity":
        self.busy += 1
        return self

    def __exit__(self, *_) -> None:
        self.busy -= 1
        self.last = time.monotonic()


def create_app(settings: Settings) -> faust.App:
    faust_fixes.apply()
    app = faust.App(
        settings.streams_group,
        broker=f"kafka://{settings.bootstrap_servers}",
        store="memory://",
        processing_guarantee="at_least_once",
        web_enabled=False,
        topic_partitions=settings.events_partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=100,
        broker_commit_interval=0.5,
        table_standby_replicas=0,
        stream_wait_empty=False,
        producer_linger_ms=1,
        # a crashed worker's partitions move to the others after 10 s, not the 60 s default
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    coordinator_topic = app.topic(settings.topics.commands, settings.topics.scan_events, **raw)
    work_topic = app.topic(settings.topics.work, **raw)
    # One state per scan id, co-partitioned with commands and scan events (same key, same count).
    scans = app.Table("scans", default=None, partitions=settings.events_partitions,
                      key_type=str)  # values use the app default codec, json
    publisher = Publisher(settings)
    dead_letters = DeadLetters(publisher, "streams", settings)
    blobs = BlobStore(settings.blob_dir)
    aborted = AbortWatch(settings)
    activity = Activity()
    reoffers = Reoffers(settings.unit_reoffer_s, MAX_OFFERS)

    @app.task
    async def watch_aborts() -> None:
        aborted.start()

    # -- handling one record: decode, run until it succeeds, ack -------------------------------

    async def handle(stream, event, handler) -> None:
        with activity:
            try:
                message = decode_checked(event.value, event.headers)
            except PoisonRecord as exc:
                await _dead_letter(event, exc)
            else:
                if _expired(event, message):  # the API answered 503 for it: it never happened
                    log.info("ignoring %s %s: appended after its expiry", message["type"], message["id"])
                else:
                    await _until_written(handler, message, event)
        await stream.ack(event)

    def _expired(event, message: dict) -> bool:
        m = event.message
        return m.topic == settings.topics.commands and is_expired(message, round(m.timestamp * 1000))

    async def _until_written(handler, message: dict, event) -> None:
        """Retry while the ledger cannot be written: the record is acked only once it was."""
        delay = 0.5
        while True:
            try:
                return await handler(message)
            except (DeliveryFailed, KafkaException) as exc:
                log.warning("could not write what %s caused, retrying in %.1fs: %s", message["type"], delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Exception as exc:  # a record the code cannot handle must not halt the worker
                log.exception("could not handle %s %s", message["type"], message["id"])
                await _dead_letter(event, exc)
                return

    async def _dead_letter(event, exc: Exception) -> None:
        """On the dead-letter topic (acked there) before the record is acked here."""
        dead_letters.send_message(event.message, exc)
        while True:
            try:
                return await dead_letters.flush_async()
            except (DeliveryFailed, KafkaException) as err:
                log.warning("could not write a dead letter, retrying: %s", err)
                await asyncio.sleep(RETRY_MAX_S / 2)

    def emit(events: list[dict]) -> None:
        for event in events:
            publisher.publish(settings.topics.scan_events, event)

    # -- the coordinator -------------------------------------------------------------------------

    async def on_run_scan(message: dict) -> None:
        scan_id = message["subject"]
        state, events = lifecycle.request(scans.get(scan_id), message)
        emit(events)
        if state["status"] == "queued":
            try:
                units = await asyncio.to_thread(plan_scan, message["data"], blobs, settings)
            except Exception as exc:  # unreadable data: the scan fails, the worker does not
                log.exception("planning scan %s failed", scan_id)
                state, events = lifecycle.fail(state, message, f"could not plan the scan: {exc}", utcnow())
                emit(events)
            else:
                state, events, work = lifecycle.start(state, message, units, utcnow())
                emit(events)
                send_work(message, message["data"], work, 0)
        await publisher.flush_async()
        scans[scan_id] = state

    def send_work(cause: dict, request: dict, units: list[dict], attempt: int) -> None:
        now = time.monotonic()
        for unit_event in work_events(cause, request, units, attempt):
            publisher.publish(settings.topics.work, unit_event, key=unit_event["data"]["unit_id"])
            reoffers.seen(request["scan_id"], unit_event["data"]["unit_id"], now)

    async def on_operator_command(message: dict) -> None:
        """Abort, resume or delete: rejected ones are logged (the API checked the state before)."""
        scan_id, type_ = message["subject"], message["type"]
        state = scans.get(scan_id)
        try:
            if type_ == c.RESUME_SCAN:
                state, events, work = lifecycle.resume(state, message, utcnow())
            else:
                act = lifecycle.abort if type_ == c.ABORT_SCAN else lifecycle.delete
                (state, events), work = act(state, message, utcnow()), []
        except lifecycle.Rejected as exc:
            log.warning("rejected %s for scan %s: %s", type_, scan_id, exc)
            return
        emit(events)
        if work:
            send_work(message, state["request"], work, state["attempt"])
        await publisher.flush_async()
        scans[scan_id] = state

    async def on_unit_done(message: dict) -> None:
        scan_id = message["subject"]
        reoffers.reported(scan_id, message["data"]["unit_id"], time.monotonic())
        state = scans.get(scan_id)
        if state is None:
            return
        state, events = lifecycle.unit_done(state, message, utcnow())
        emit(events)
        await publisher.flush_async()
        scans[scan_id] = state

    async def on_unit_progressed(message: dict) -> None:
        reoffers.seen(message["subject"], message["data"]["unit_id"], time.monotonic())

    async def on_change_violation_status(message: dict) -> None:
        scan_id = message["subject"]
        try:
            state, events = lifecycle.change_violation_status(scans.get(scan_id), message, message["time"])
        except lifecycle.Rejected as exc:
            log.warning("rejected %s for scan %s: %s", message["type"], scan_id, exc)
            return
        emit(events)
        await publisher.flush_async()
        scans[scan_id] = state

    handlers = {c.RUN_SCAN: on_run_scan, c.CHANGE_VIOLATION_STATUS: on_change_violation_status,
                c.UNIT_COMPLETED: on_unit_done, c.UNIT_FAILED: on_unit_done, c.UNIT_PROGRESSED: on_unit_progressed,
                c.ABORT_SCAN: on_operator_command, c.RESUME_SCAN: on_operator_command,
                c.DELETE_SCAN: on_operator_command}

    @app.agent(coordinator_topic, name="coordinator")
    async def coordinator(stream):
        stream = stream.noack()
        async for event in stream.events():
            handler = handlers.get(_header_type(event))
            if handler is None:  # violations progress etc.: nothing for the coordinator
                await stream.ack(event)
            else:
                await handle(stream, event, handler)

    # -- the evaluators --------------------------------------------------------------------------

    async def evaluate(message: dict) -> None:
        scan_id, attempt = message["subject"], message["data"].get("attempt", 0)
        if aborted.is_aborted(scan_id, attempt):
            return
        stop = lambda: aborted.is_aborted(scan_id, attempt)  # noqa: E731
        try:
            if message["data"].get("kind", "compliance") == "compliance":
                await asyncio.to_thread(run_unit, message, blobs, publisher, settings, stop)
            else:
                await asyncio.to_thread(run_target_unit, message, publisher, settings, stop)
        except (DeliveryFailed, KafkaException):
            raise
        except Exception as exc:  # a unit the code cannot evaluate fails; its scan goes on
            log.exception("unit %s failed", message["data"]["unit_id"])
            publisher.publish(settings.topics.scan_events,
                              unit_result_event(message, message["data"], {}, {}, [f"unit failed: {exc}"], 0))
            await publisher.flush_async()

    @app.agent(work_topic, name="evaluator")
    async def evaluator(stream):
        # Up to EVALUATORS units at once, each acked when it is done: the commit point of a
        # partition stops at its oldest unit still in flight (faust_fixes makes that hold).
        stream = stream.noack()
        slots = asyncio.Semaphore(EVALUATORS)
        running: set[asyncio.Task] = set()

        async def one(event) -> None:
            try:
                if _header_type(event) == c.WORK_UNIT:
                    await handle(stream, event, evaluate)
                else:
                    await stream.ack(event)
            finally:
                slots.release()

        async for event in stream.events():
            await slots.acquire()
            task = asyncio.ensure_future(one(event))
            running.add(task)
            task.add_done_callback(running.discard)

    # -- the watchdogs ---------------------------------------------------------------------------

    @app.timer(WATCH_EVERY_S)
    async def reoffer_silent_units() -> None:
        """Send again the work of units that show no sign of life; fail one that never does."""
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topics.commands}
        n = settings.commands_partitions
        running = [state for scan_id, state in list(scans.items())
                   if state and state["status"] == "running" and _partition(scan_id, n) in owned]
        for action, state, unit_id in reoffers.due(running, time.monotonic()):
            unit = state["units"][unit_id]
            cause = {"id": f"reoffer:{unit_id}", "subject": state["scan_id"], "workspaceid": state["workspace_id"],
                     "correlationid": state["scan_id"]}
            [work] = work_events(cause, state["request"], [unit["plan"]], unit["attempt"])
            if action == "fail":
                log.error("unit %s: no worker reported after %d offers; failing it", unit_id, MAX_OFFERS)
                publisher.publish(settings.topics.scan_events, unit_result_event(
                    work, work["data"], {}, {}, [f"no worker reported on the unit after {MAX_OFFERS} offers"], 0))
            else:
                log.warning("unit %s: no sign of life for %.0fs; offering it again", unit_id, settings.unit_reoffer_s)
                publisher.publish(settings.topics.work, work, key=unit_id)
        try:
            await publisher.flush_async()
        except (DeliveryFailed, KafkaException) as exc:  # the broker is away: offered again next round
            log.warning("could not offer units again: %s", exc)

    stall = StallWatch(settings.stall_s)

    @app.timer(WATCH_EVERY_S)
    async def exit_when_stalled() -> None:
        """Lag that nothing consumes: exit, and let the supervisor start a fresh worker."""
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            stall.observe(time.monotonic(), {}, True, activity.last)
            return
        changelogs = app.tables.changelog_topics
        tps = [(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic not in changelogs]
        try:
            lag = await asyncio.to_thread(group_lag, settings, settings.streams_group, tps)
        except KafkaException as exc:  # the broker is away: not a stall of ours, and the window starts again
            log.warning("stall check skipped: %s", exc)
            stall.observe(time.monotonic(), {}, True, activity.last)
            return
        reason = stall.observe(time.monotonic(), lag, activity.busy > 0, activity.last)
        if reason:
            log.error("worker stalled, exiting so that it is restarted: %s", reason)
            logging.shutdown()
            os._exit(3)  # nothing more is committed; the restarted worker reads from the commit point

    return app


def _partition(key: str, partitions: int) -> int:
    """The partition the Java client (and confluent-kafka with murmur2_random) puts a key in."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _header_type(event) -> str | None:
    return header_type(event.headers)


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    from services.kafka import ensure_topics

    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
