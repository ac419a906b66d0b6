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
from services.domain.watchdog import StallWatch, recovery_stalled
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


def exit_when_stalled(app: faust.App, settings: Settings, activity: Activity):
    stall = StallWatch(settings.stall_s)

    async def exit_when_stalled() -> None:
        """Lag that nothing consumes: exit, and let the supervisor start a fresh worker."""
        recovery = app.tables.recovery
        if app.rebalancing or not recovery.completed.is_set():
            # Faust's recovery can wait on changelog partitions that deliver nothing (seen once in CI
            # after a worker was SIGKILLed: three minutes, then it went on): time in recovery is not
            # a stall of consuming, but a recovery that reads nothing is. Faust's own clocks
            # (faust-streaming < 0.16, as streams/faust_fixes.py).
            reason = recovery_stalled(time.monotonic(), recovery._recovery_started_at if recovery.in_recovery else None,
                                      recovery._last_active_event_processed_at, settings.stall_s)
            if reason:
                _exit(reason)
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
            _exit(reason)
    return exit_when_stalled


def _exit(reason: str) -> None:
    log.error("worker stalled, exiting so that it is restarted: %s", reason)
    logging.shutdown()
    os._exit(3)  # nothing more is committed; the restarted worker reads from the commit point
