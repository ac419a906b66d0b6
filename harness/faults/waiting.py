"""Waiting on the system, never without a deadline: a scan's status through the API, every scan of a
run until it is final (restarting meanwhile a process that exited by itself), and the units' reports
on the ledger, followed as they are written to time a fault (`UnitWatch`) or read back afterwards to
tell whether it landed mid-scan (`unit_reports`)."""
from __future__ import annotations

import contextlib
import threading
import time

import httpx
import orjson
from confluent_kafka import TopicPartition

from harness.faults.knobs import FINAL
from harness.faults.probes import _consumer, read_topic, watermarks
from services.domain import contracts as c
from services.domain.envelope import header_type
from services.settings import Settings

# --------------------------------------------------------------------------- waiting


def scan_status(api: httpx.Client, scan_id: str) -> str | None:
    """The scan's status as GET /api/scan/{id} shows it (final only once every violation is in), or
    None when the API does not answer or does not know the scan."""
    try:
        r = api.get(f"/api/scan/{scan_id}", timeout=10)
    except httpx.HTTPError:
        return None
    return r.json()["status"] if r.status_code == 200 else None


def _wait_final(target, scan_ids, deadline: float, exited: dict | None = None,
                restarts: list | None = None) -> dict[str, float | None]:
    """monotonic time each scan was first seen final, None if not by the deadline. Meanwhile a process
    that exits by itself is started again (noted in `restarts`); if nothing can restart it (`up`
    itself exited), gives up at once, noting it in `exited`."""
    done: dict[str, float | None] = dict.fromkeys(scan_ids)
    with target.client() as api:
        while True:
            for s in [s for s, t in done.items() if t is None]:
                if scan_status(api, s) in FINAL:
                    done[s] = time.monotonic()
            if all(t is not None for t in done.values()) or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)
            if restarts is not None:
                restarts += target.supervise()
            if exited is not None and (gone := target.unrecoverable()):
                time.sleep(1)  # its last words reach the log
                exited.update(gone)
                return done


def unit_reports(settings: Settings, scan_id: str) -> dict[str, int]:
    """unit id -> timestamp (ms) of its first report (completed or failed) on the ledger."""
    out: dict[str, int] = {}
    for _, _, ts, headers, key, value in read_topic(settings, settings.topics.scan_events):
        if key != scan_id.encode() or header_type(headers) not in (c.UNIT_COMPLETED, c.UNIT_FAILED):
            continue
        with contextlib.suppress(Exception):
            unit = orjson.loads(value)["data"]["unit_id"]
            out[unit] = min(ts, out.get(unit, ts))
    return out


class UnitWatch:
    """Follows unit reports of the scans on the ledger as they are written, to time a fault."""

    def __init__(self, settings: Settings):
        self.settings = settings
        topic = settings.topics.scan_events
        self._consumer = _consumer(settings, **{"fetch.wait.max.ms": 5})
        ends = watermarks(settings, [topic])
        self._consumer.assign([TopicPartition(topic, p, off) for (_, p), off in ends.items()])
        # one round trip, so the consumer is connected and fetching before the scans start
        self._consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        self._done: dict[str, set[str]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._consumer.consume(100, 0.005)
            except Exception:
                time.sleep(0.1)
                continue
            for m in batch:
                if m.error() or header_type(m.headers()) not in (c.UNIT_COMPLETED, c.UNIT_FAILED):
                    continue
                with contextlib.suppress(Exception):
                    d = orjson.loads(m.value())["data"]
                    with self._cond:
                        self._done.setdefault(d["scan_id"], set()).add(d["unit_id"])
                        self._cond.notify_all()

    def wait(self, scan_id: str, count: int, timeout_s: float) -> int:
        """Block until `count` units of the scan reported (or the timeout); how many had."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._done.get(scan_id, ())) < count and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return len(self._done.get(scan_id, ()))

    def reported(self, scan_ids) -> int:
        """How many units of these scans have reported so far (each unit once)."""
        with self._cond:
            return sum(len(self._done.get(s, ())) for s in scan_ids)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
