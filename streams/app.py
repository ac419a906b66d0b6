"""The Faust streams app: the coordinator and evaluator agents.

The agents only move messages; every decision is made in services/ (lifecycle, planning,
evaluation). Our CloudEvents topics are read as raw bytes and decoded with our own orjson
codec so no Faust record metadata ever reaches them; events are written with the shared
idempotent confluent-kafka publisher, flushed before the agent moves on, so a consumed
offset is committed only after everything it caused is on the ledger (at-least-once; every
consumer de-duplicates on event ids).
"""
from __future__ import annotations

import asyncio
import logging

import faust

from services import contracts as c
from services import lifecycle
from services.abort_watch import AbortWatch
from services.blobstore import BlobStore
from services.envelope import decode, header_type, utcnow
from services.kafka import Publisher
from services.settings import Settings
from services.target_runner import run_target_unit
from services.unit_runner import plan_scan, run_unit, work_events

log = logging.getLogger("scanledger.streams")
EVALUATORS = 2  # units evaluated at once per worker (pyarrow releases the GIL)



def create_app(settings: Settings) -> faust.App:
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
    blobs = BlobStore(settings.blob_dir)
    aborted = AbortWatch(settings)

    @app.task
    async def watch_aborts() -> None:
        aborted.start()

    def emit(events: list[dict]) -> None:
        for event in events:
            publisher.publish(settings.topics.scan_events, event)

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
        scans[scan_id] = state
        await publisher.flush_async()

    def send_work(cause: dict, request: dict, units: list[dict], attempt: int) -> None:
        for unit_event in work_events(cause, request, units, attempt):
            publisher.publish(settings.topics.work, unit_event, key=unit_event["data"]["unit_id"])

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
        scans[scan_id] = state
        emit(events)
        if work:
            send_work(message, state["request"], work, state["attempt"])
        await publisher.flush_async()

    async def on_unit_done(message: dict) -> None:
        scan_id = message["subject"]
        state = scans.get(scan_id)
        if state is None:
            return
        state, events = lifecycle.unit_done(state, message, utcnow())
        scans[scan_id] = state
        emit(events)
        await publisher.flush_async()

    async def on_change_violation_status(message: dict) -> None:
        scan_id = message["subject"]
        try:
            state, events = lifecycle.change_violation_status(scans.get(scan_id), message, message["time"])
        except lifecycle.Rejected as exc:
            log.warning("rejected %s for scan %s: %s", message["type"], scan_id, exc)
            return
        scans[scan_id] = state
        emit(events)
        await publisher.flush_async()

    handlers = {c.RUN_SCAN: on_run_scan, c.CHANGE_VIOLATION_STATUS: on_change_violation_status,
                c.UNIT_COMPLETED: on_unit_done, c.UNIT_FAILED: on_unit_done, c.ABORT_SCAN: on_operator_command,
                c.RESUME_SCAN: on_operator_command, c.DELETE_SCAN: on_operator_command}

    @app.agent(coordinator_topic, name="coordinator")
    async def coordinator(stream):
        async for event in stream.events():
            type_ = header_type(event.headers)
            if type_ in handlers:
                await handlers[type_](decode(event.value))

    async def evaluate(event) -> None:
        if header_type(event.headers) != c.WORK_UNIT:
            return
        message = decode(event.value)
        scan_id, attempt = message["subject"], message["data"].get("attempt", 0)
        if aborted.is_aborted(scan_id, attempt):
            return
        stop = lambda: aborted.is_aborted(scan_id, attempt)  # noqa: E731
        if message["data"].get("kind", "compliance") == "compliance":
            await asyncio.to_thread(run_unit, message, blobs, publisher, settings, stop)
        else:
            await asyncio.to_thread(run_target_unit, message, publisher, settings, stop)

    @app.agent(work_topic, name="evaluator")
    async def evaluator(stream):
        # One actor evaluating up to EVALUATORS units at once, acking them only when all are
        # done. Not `concurrency=2`: Faust then commits past a unit still in flight on a
        # partition with no committed offset yet (its gap check skips those), and a crash
        # loses that unit for good.
        async for events in stream.take_events(EVALUATORS, within=0.02):
            await asyncio.gather(*(evaluate(e) for e in events))

    return app


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    from services.kafka import ensure_topics

    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
