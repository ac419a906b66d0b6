"""The evaluator: run one unit of work, unless its scan was aborted.

The unit runs in a worker thread (pyarrow releases the GIL). A unit the code cannot
evaluate is a failed unit, so its scan still ends; a ledger that cannot be written
(`DeliveryFailed`, `KafkaException`), or a blob store that does not answer (`BlobUnavailable`),
is raised, for the record pipeline to retry.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaException

from services.adapters.abort_watch import AbortWatch
from services.adapters.blobstore import BlobStore, BlobUnavailable
from services.adapters.kafka import DeliveryFailed, Publisher
from services.domain.evaluation import unit_result_event
from services.domain.ledger_chain import unit_stream
from services.runners import run_work
from services.settings import Settings

log = logging.getLogger("scanledger.streams")


class Evaluator:
    def __init__(self, publisher: Publisher, blobs: BlobStore, settings: Settings, aborted: AbortWatch,
                 run: Callable[..., None] = run_work) -> None:
        self.publisher, self.blobs, self.settings, self.aborted, self.run = publisher, blobs, settings, aborted, run

    async def evaluate(self, message: dict, _digest: str = "") -> None:
        scan_id, attempt = message["subject"], message["data"].get("attempt", 0)
        if self.aborted.is_aborted(scan_id, attempt):
            return

        def stop() -> bool:
            return self.aborted.is_aborted(scan_id, attempt)

        # everything this attempt writes is one chain (services.domain.ledger_chain), its result last
        chained = self.publisher.chained(unit_stream(message["data"]["unit_id"], attempt))
        try:
            await asyncio.to_thread(self.run, message, self.blobs, chained, self.settings, stop)
        except (DeliveryFailed, KafkaException, BlobUnavailable):
            raise
        except Exception as exc:  # a unit the code cannot evaluate fails; its scan goes on
            log.exception("unit %s failed", message["data"]["unit_id"])
            chained.publish(self.settings.topics.scan_events,
                            unit_result_event(message, message["data"], {}, {}, [f"unit failed: {exc}"], 0))
            await self.publisher.flush_async()
