"""Which scans are aborted, as every evaluator must know to stop between batches.

A scan is aborted up to an attempt: the work of a later attempt (sent by a resume) runs,
even if this thread has not read the resume yet, so no resumed unit is ever skipped.

A thread in each worker reads the scan-events topic (types from the type header only,
never decoding a value) from a week back, which is as far back as the work topic keeps
units: a unit of a scan aborted earlier than that cannot be waiting for an evaluator.
"""
from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from services.adapters.kafka import consumer_config
from services.adapters.kafka_admin import WEEK_MS
from services.domain import contracts as c
from services.domain.envelope import decode, header_type
from services.settings import Settings

log = logging.getLogger("scanledger.abort_watch")


class AbortWatch:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._aborted: dict[str, int] = {}  # scan id -> the last attempt that was aborted
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="abort-watch", daemon=True)

    def start(self) -> AbortWatch:
        self._thread.start()
        return self

    def is_aborted(self, scan_id: str, attempt: int) -> bool:
        with self._lock:
            return self._aborted.get(scan_id, -1) >= attempt

    def _run(self) -> None:
        topic = self._settings.topics.scan_events
        consumer = Consumer(consumer_config(self._settings, f"{self._settings.streams_group}-abort-watch"))
        since = int(time.time() * 1000) - WEEK_MS
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        starts = consumer.offsets_for_times([TopicPartition(topic, p, since) for p in partitions], timeout=30)
        consumer.assign(starts)
        try:
            while True:  # a daemon thread: it ends with the worker
                for m in consumer.consume(num_messages=1000, timeout=0.2):
                    if m.error():
                        continue
                    if header_type(m.headers()) == c.SCAN_ABORTED:
                        try:
                            data = decode(m.value())["data"]
                            scan_id, attempt = data["scan_id"], int(data["attempt"])
                        except Exception:  # a poison record: the coordinator dead-letters it
                            log.warning("unreadable abort event at %s[%d]@%d", m.topic(), m.partition(), m.offset())
                            continue
                        with self._lock:
                            self._aborted[scan_id] = attempt
        finally:
            consumer.close()
