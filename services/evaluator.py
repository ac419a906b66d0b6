"""The evaluator: run one unit of work, unless its scan was aborted.

The unit runs in a worker thread (pyarrow releases the GIL). A unit the code cannot
evaluate is a failed unit, so its scan still ends; a ledger that cannot be written
(`DeliveryFailed`, `KafkaException`) is raised, for the record pipeline to retry.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaException

from services.abort_watch import AbortWatch
from services.blobstore import BlobStore
from services.evaluation import unit_result_event
from services.kafka import DeliveryFailed, Publisher
from services.settings import Settings
from services.target_runner import run_target_unit
from services.unit_runner import run_unit

log = logging.getLogger("scanledger.streams")


def run_by_kind(message: dict, blobs: BlobStore, publisher: Publisher, settings: Settings,
                should_stop: Callable[[], bool]) -> None:
    """A compliance unit reads its blob; a monitor scan's or a sync's reads its container."""
    if message["data"].get("kind", "compliance") == "compliance":
        run_unit(message, blobs, publisher, settings, should_stop)
    else:
        run_target_unit(message, publisher, settings, should_stop)


class Evaluator:
    def __init__(self, publisher: Publisher, blobs: BlobStore, settings: Settings, aborted: AbortWatch,
                 run: Callable[..., None] = run_by_kind) -> None:
        self.publisher, self.blobs, self.settings, self.aborted, self.run = publisher, blobs, settings, aborted, run

    async def evaluate(self, message: dict) -> None:
        scan_id, attempt = message["subject"], message["data"].get("attempt", 0)
        if self.aborted.is_aborted(scan_id, attempt):
            return
        stop = lambda: self.aborted.is_aborted(scan_id, attempt)
        try:
            await asyncio.to_thread(self.run, message, self.blobs, self.publisher, self.settings, stop)
        except (DeliveryFailed, KafkaException):
            raise
        except Exception as exc:  # a unit the code cannot evaluate fails; its scan goes on
            log.exception("unit %s failed", message["data"]["unit_id"])
            self.publisher.publish(self.settings.topics.scan_events,
                                   unit_result_event(message, message["data"], {}, {}, [f"unit failed: {exc}"], 0))
            await self.publisher.flush_async()
