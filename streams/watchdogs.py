"""The two watchdogs' Faust side: what this worker owns, and whether it stalled.

The decisions are in services.domain.watchdog (and `Coordinator.reoffer_round`); here is what
only a running Faust app can tell: its partition assignment, rebalancing and table recovery.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import faust
from confluent_kafka import KafkaException

from services.adapters.kafka_admin import group_lag
from services.domain.watchdog import RecoveryWatch, StallWatch
from services.settings import Settings
from streams.coordinator import Coordinator
from streams.record_handling import Activity

log = logging.getLogger("scanledger.streams")


def reoffer_silent_units(app: faust.App, settings: Settings, coordinator: Coordinator):
    async def reoffer_silent_units() -> None:
        """Send again the work of units that show no sign of life; fail one that never does."""
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topics.commands}
        work = [(settings.topics.work, p) for p in range(settings.work_partitions)]
        try:
            lag = await asyncio.to_thread(group_lag, settings, settings.streams_group, work)
        except KafkaException as exc:  # the broker is away: nothing can be offered anyway
            log.warning("re-offer round skipped: %s", exc)
            return
        await coordinator.reoffer_round(owned, {p: offsets for (_topic, p), offsets in lag.items()})
    return reoffer_silent_units


def watch_recovery(app: faust.App, settings: Settings, every_s: float):
    """A task of its own, started at the first partition assignment (connect the returned function to
    `app.on_partitions_assigned`): Faust starts the app's timers only once the first table recovery is
    over, so a timer never sees a worker whose first recovery hangs."""
    watch, running = RecoveryWatch(settings.stall_s), []

    async def check() -> None:
        # Faust's recovery can wait on changelog partitions that deliver nothing (seen in CI after a worker
        # was SIGKILLed: two minutes, until this watchdog restarted the worker): time in recovery is not a
        # stall, but a recovery that reads nothing is. Seek what it still needs once; then exit. Faust's
        # own clocks (faust-streaming < 0.16, as streams/faust_fixes.py).
        recovery = app.tables.recovery
        step = watch.observe(time.monotonic(), recovery._recovery_started_at if recovery.in_recovery else None,
                             recovery._last_active_event_processed_at, recovery.in_recovery and _drained(app))
        if step and step[0] == "exit":
            _exit(f"{step[1]}; {recovery_report(app)}")
        if step and step[0] == "seek":
            log.warning("%s; %s; seeking it again", step[1], recovery_report(app))
            await _seek_changelogs_again(recovery)

    async def loop() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await check()
            except Exception:  # a watchdog that dies leaves a hang unnoticed: log it and watch on
                log.exception("recovery watch")

    def start(*_args, **_kwargs) -> None:
        if not running:
            running.append(asyncio.ensure_future(loop()))  # held: the loop keeps only weak references
    return start


def exit_when_stalled(app: faust.App, settings: Settings, activity: Activity):
    stall = StallWatch(settings.stall_s)

    async def exit_when_stalled() -> None:
        """Lag that nothing consumes: exit, and let the supervisor start a fresh worker."""
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            stall.observe(time.monotonic(), {}, True, activity.last)  # recovering: watch_recovery's to judge
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
            _exit(reason)
    return exit_when_stalled


async def _seek_changelogs_again(recovery) -> None:
    """Seek each changelog partition the recovery still needs to the last record it applied (Faust's own
    seek: records it already has are skipped by offset), and make sure it is fetched."""
    lagging = {tp for tp, remaining in recovery.active_remaining().items() if remaining > 0}
    if lagging:
        recovery.app.consumer.resume_partitions(lagging)
        await recovery._seek_offsets(recovery.app.consumer, lagging, recovery.active_offsets, "active")


def _lagging(app: faust.App) -> list[tuple]:
    """(tp, need, have, aiokafka's fetch state or None, fetched and not yet handed on, active in Faust) of each
    changelog partition the recovery still needs records of."""
    recovery, consumer = app.tables.recovery, app.consumer
    client = consumer._thread._ensure_consumer()
    subscription, fetched = client._subscription.subscription, client._fetcher._records
    active = consumer._get_active_partitions()
    return [(tp, recovery.active_highwaters[tp], recovery.active_offsets.get(tp),
             subscription.assignment.state_value(tp) if subscription else None, tp in fetched, tp in active)
            for tp in sorted(tp for tp, remaining in recovery.active_remaining().items() if remaining > 0)]


def _drained(app: faust.App) -> bool:
    """Every record the recovery still needs was fetched (the position is past it), none waits in the fetcher
    or the changelog queue: nothing is on its way, so what did not arrive was dropped."""
    try:
        lagging = _lagging(app)
        return bool(lagging) and app.tables.changelog_queue.qsize() == 0 and all(
            state is not None and state._position is not None and state._position > need and not fetched
            for _tp, need, _have, state, fetched, _active in lagging)
    except Exception:  # private state that cannot be read: not drained, the window decides
        return False


def recovery_report(app: faust.App) -> str:
    """Where a stalled table recovery waits, in one line: what each changelog partition it still needs
    lacks and where its fetch stands, the flow switches, and what recovery's tasks are awaiting. Faust's and
    aiokafka's private state: read defensively, for the log only."""
    parts = []
    try:
        consumer = app.consumer
        for tp, need, have, state, fetched, active in _lagging(app):
            where = (f"position {state._position} {state._status.name}{' paused' if state._paused else ''}"
                     if state else "not assigned")
            parts.append(f"{tp.topic}[{tp.partition}] need {need} have {have} {where}"
                         f"{' fetched' if fetched else ''}{'' if active else ' not-active'}")
        parts.append(f"flow {'on' if consumer.flow_active else 'off'}, flow control "
                     f"{'on' if app.flow_control.is_active() else 'suspended'}, "
                     f"buffered {sorted(consumer._buffered_partitions)}, changelog queue "
                     f"{app.tables.changelog_queue.qsize()}, producer buffer {app.producer.buffer.size}")
        parts.extend(_awaiting(("_drain_messages", "on_message", "_slurp_changelogs", "_restart_recovery")))
    except Exception as exc:  # a report that cannot be read must not stop the exit
        parts.append(f"(report failed: {exc!r})")
    return "; ".join(parts)


def _awaiting(names: tuple[str, ...]) -> list[str]:
    """For each task running one of `names`: its chain of awaits, innermost last."""
    chains = []
    for task in asyncio.all_tasks():
        chain, coro = [], task.get_coro()
        while getattr(coro, "cr_frame", None) is not None:
            chain.append(f"{coro.cr_code.co_name}:{coro.cr_frame.f_lineno}")
            coro = coro.cr_await
        if any(step.split(":")[0] in names for step in chain):
            chains.append("awaits " + " > ".join(chain) + f" > {type(coro).__name__}")
    return chains


def _exit(reason: str) -> None:
    log.error("worker stalled, exiting so that it is restarted: %s", reason)
    logging.shutdown()
    os._exit(3)  # nothing more is committed; the restarted worker reads from the commit point
