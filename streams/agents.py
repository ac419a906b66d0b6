"""The agents' loops: Faust events in, handled by services, acked only once handled.

Streams run with Faust's acks off (`stream.noack()`): Faust acks in a `finally`, so a
handler that raised or was cancelled at shutdown would otherwise be committed past. A
record is acked after `RecordHandling.process` returned, never before.
"""
from __future__ import annotations

import asyncio

from services.domain import contracts as c
from services.domain.envelope import header_type
from streams.coordinator import Coordinator
from streams.record_handling import Handler, Record, RecordHandling


def record(event) -> Record:
    m = event.message
    return Record(event.value, event.headers, m.topic, round(m.timestamp * 1000), m)


def coordinate(records: RecordHandling, coordinator: Coordinator):
    async def coordinator_agent(stream):
        stream = stream.noack()
        async for event in stream.events():
            if coordinator.handles(header_type(event.headers)):
                await records.process(record(event), coordinator.handle)
            await stream.ack(event)
    return coordinator_agent


def evaluate_concurrently(records: RecordHandling, evaluate: Handler, at_once: int):
    """Up to `at_once` units at once, each acked when it is done: the commit point of a
    partition stops at its oldest unit still in flight (streams/faust_fixes.py makes that hold)."""
    async def evaluator_agent(stream):
        stream = stream.noack()
        slots = asyncio.Semaphore(at_once)
        running: set[asyncio.Task] = set()

        async def one(event) -> None:
            try:
                if header_type(event.headers) == c.WORK_UNIT:
                    await records.process(record(event), evaluate)
                await stream.ack(event)
            finally:
                slots.release()

        async for event in stream.events():
            await slots.acquire()
            task = asyncio.ensure_future(one(event))
            running.add(task)
            task.add_done_callback(running.discard)
    return evaluator_agent
