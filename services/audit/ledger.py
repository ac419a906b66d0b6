"""One scan's ledger, read from the log: every command and scan event of it, in log order.

A scan's records are keyed by its id, so each topic holds them in one partition (murmur2, as
every producer partitions): its scan-events partition is read whole and filtered by key. The
commands topic is read whole, since a rerun's RunScan is keyed by the new scan yet belongs in
the history of the scan it reruns too (as GET /api/scans/{id}/history shows it). A record with
the scan's key that is not a readable event is kept as such: on an audited log it is news.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.adapters.ledger_reader import LedgerReader, Meter
from services.domain import contracts as c
from services.domain.codec import PoisonRecord, decode_checked
from services.domain.partitioning import partition_of
from services.settings import Settings


@dataclass(frozen=True)
class LedgerEntry:
    topic: str
    partition: int
    offset: int
    logged_at: int  # the record's timestamp, ms (the commands topic's: the broker's append time)
    event: dict | None  # None: the record is not a readable event (`error` says why)
    error: str | None = None

    @property
    def order(self) -> tuple:
        """Log order, as services.readmodels.scan_history orders the API's history."""
        return (self.logged_at, self.topic, self.offset)


def _belongs(event: dict, scan_id: str) -> bool:
    return event["subject"] == scan_id or (event["type"] == c.RUN_SCAN and event["data"].get("rerun_of") == scan_id)


def scan_ledger(settings: Settings, scan_id: str, meter: Meter | None = None) -> list[LedgerEntry]:
    """The scan's commands and scan events (not its violations and findings), ordered as the API's history."""
    reader = LedgerReader(settings, "audit")
    try:
        commands, events = settings.topics.commands, settings.topics.scan_events
        partitions = reader.partitions(events)
        tps = [(commands, p) for p in reader.partitions(commands)]
        if partitions:
            tps.append((events, partition_of(scan_id, len(partitions))))
        key = scan_id.encode()
        found = []
        for m in reader.read(reader.ends(tps), meter):
            if m.error():
                continue
            try:
                event = decode_checked(m.value())
            except PoisonRecord as exc:
                if m.key() == key:
                    found.append(LedgerEntry(m.topic(), m.partition(), m.offset(), m.timestamp()[1], None,
                                             exc.reason))
                continue
            if _belongs(event, scan_id):
                found.append(LedgerEntry(m.topic(), m.partition(), m.offset(), m.timestamp()[1], event))
    finally:
        reader.close()
    seen: set[str] = set()
    out = []
    for entry in sorted(found, key=lambda e: (e.topic, e.partition, e.offset)):  # first copy of an event id wins
        if entry.event is None or entry.event["id"] not in seen:
            out.append(entry)
            if entry.event is not None:
                seen.add(entry.event["id"])
    return sorted(out, key=lambda e: e.order)
