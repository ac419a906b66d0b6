"""The batch that applies records to every read model in one transaction.

One module per read model registers `{event type: handler}` (services.readmodels.scan_requests,
scans, units, asset_profiles, violations, score_history); apply_batch merges them and runs
every handler of a record in READ_MODELS order, then finalizes the scans the batch touched
and stores the offsets, all in the caller's transaction.

Every event type of the topics the projector reads is either handled here or listed in
IGNORED with the reason; a type this code does not know (a newer producer's) and a
placeholder for a refused record (no type) apply nothing but their offset.

Every apply is idempotent on event ids (violations by their primary key, a RunScan by its
scan id, the other events through rm_processed_events), so a re-emitted event changes
nothing. Nothing here reads the clock: the rows are a function of the ledger alone, which
is what lets `replay` arrive at exactly the rows of the live projector.
"""
from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from services.domain import contracts as c
from services.domain.codec import decode_checked, decode_violation
from services.readmodels import (
    asset_profiles,
    scan_history,
    scan_requests,
    scans,
    score_history,
    sensitive_scans,
    units,
    violations,
)
from services.readmodels.record import Record

__all__ = ["HANDLERS", "IGNORED", "READ_MODELS", "Record", "apply_batch", "decode_record", "next_offsets",
           "store_offsets"]

# The order a record's handlers run in. A handler that reads another read model's table sees
# it before that model applies the same event: scans counts what units are about to add, so it
# comes before them. (Violations count themselves on their scan as they insert: their rowcount.)
READ_MODELS: tuple[ModuleType, ...] = (scan_requests, scans, units, asset_profiles, violations, score_history,
                                       sensitive_scans, scan_history)

# The contract types deliberately not applied, each with its reason.
# (Commands the coordinator decides on, abort, resume, delete and violation status changes, only go
# into the scan's history: what was decided arrives as its own event.)
IGNORED: dict[str, str] = {
    c.WORK_UNIT: "on the work topic, which the projector does not read",
    c.CONFIG_CHANGED: "a config table's row, not a read model: services.stores.config_log.apply (the projector)",
}
# Idempotent by themselves, so not recorded in rm_processed_events: a RunScan adds a pending
# scan by its id only while the scan is not projected; a violation's id is its primary key.
SELF_IDEMPOTENT = frozenset({c.RUN_SCAN, c.VIOLATION_DETECTED, c.FINDING_DETECTED})  # a finding: (scan, id) is its key
# Applied together after the batch's other records, each handler once with all of them:
# the bulk of the ledger, inserted with one executemany.
BATCHED = frozenset({c.VIOLATION_DETECTED})


def _merge(models: tuple[ModuleType, ...]) -> dict[str, tuple[Callable, ...]]:
    merged: dict[str, list[Callable]] = {}
    for model in models:
        for type_, handler in model.HANDLERS.items():
            merged.setdefault(type_, []).append(handler)
    return {type_: tuple(handlers) for type_, handlers in merged.items()}


HANDLERS: dict[str, tuple[Callable, ...]] = _merge(READ_MODELS)


_UNTIMED = frozenset({c.VIOLATION_DETECTED, c.FINDING_DETECTED})


def needs_timestamp(event: dict) -> bool:
    """Whether applying the event reads its record's timestamp: a RunScan's expiry does, and a scan's
    history orders by it; the bulk of the ledger (violations, findings) does not, so is spared the call."""
    return event["type"] not in _UNTIMED


def decode_record(message) -> Record:
    """A consumed message as the read models take it, or PoisonRecord. A violation (the bulk of the
    ledger) in exactly its contract's shape is decoded straight into its row, no dict; every
    other record, a violation in any other shape included, goes through decode_checked, so what
    is refused and why is decided in one place."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    violation = decode_violation(message.value())
    if violation is not None:
        return Record(topic, partition, offset, c.VIOLATION_DETECTED, {}, row=violations.row_of(violation))
    # Every event is applied, so its type comes from the body and the type header is not read:
    # confluent-kafka builds the headers list anew per call, ~15% of replay's time.
    event = decode_checked(message.value())
    if event["type"] == c.VIOLATION_DETECTED:
        return Record(topic, partition, offset, c.VIOLATION_DETECTED, event, row=violations.row_of_event(event))
    return Record(topic, partition, offset, event["type"], event,
                  message.timestamp()[1] if needs_timestamp(event) else None)


def _first_time(conn, event_id: str) -> bool:
    return conn.execute("INSERT INTO rm_processed_events (event_id) VALUES (:event_id) ON CONFLICT DO NOTHING",
                        {"event_id": event_id}).rowcount == 1


def apply_batch(conn, records: list[Record], offsets: bool = True) -> None:
    """Apply records (already inside a transaction), then finalize the scans they completed and (unless
    the caller stores them itself, once for many parts of a batch) store their offsets."""
    touched: set[str] = set()
    batched: dict[str, list[Record]] = {type_: [] for type_ in BATCHED}
    bulk_scans = sensitive_scans.bulk_scans(conn, records)
    sensitive: list[Record] = []
    for rec in records:
        if rec.type in BATCHED:  # the bulk of the ledger: asked first, the fewest steps a record
            batched[rec.type].append(rec)
            continue
        handlers = HANDLERS.get(rec.type)
        if handlers is None:
            continue  # IGNORED, unknown, or a placeholder: only its offset is stored
        if rec.type in sensitive_scans.BULK and rec.event["data"]["scan_id"] in bulk_scans:
            sensitive.append(rec)
            touched.add(rec.event["data"]["scan_id"])
        elif rec.type in SELF_IDEMPOTENT:
            for apply in handlers:
                apply(conn, rec)
            touched.add(rec.event["data"]["scan_id"])  # a finding may be the last one its finished scan waits for
        elif _first_time(conn, rec.event["id"]):
            for apply in handlers:
                apply(conn, rec)
            touched.add(rec.event["subject"])
    _apply_sensitive(conn, sensitive)
    for type_, recs in batched.items():
        if recs:
            for apply in HANDLERS[type_]:
                touched.update(apply(conn, recs))  # a batched handler returns the scans its records belong to
    for scan_id in sorted(touched):
        scans.finalize(conn, scan_id)
    if offsets:
        store_offsets(conn, records)


def _apply_sensitive(conn, recs: list[Record]) -> None:
    """File outcomes and findings in bulk: each table once, as their handlers would one record at a time
    (a file outcome is recorded in rm_processed_events and the scan's history too)."""
    outcomes = [rec for rec in recs if rec.type == c.FILE_OUTCOME]
    conn.executemany("INSERT INTO rm_processed_events (event_id) VALUES (?) ON CONFLICT DO NOTHING",
                     [(rec.event["id"],) for rec in outcomes])
    sensitive_scans.outcomes_and_findings(conn, recs)
    scan_history.record_many(conn, outcomes)


def next_offsets(records: list[Record]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset after the batch's last record in it (a pass over every record of the
    batch, twice a batch: written for speed)."""
    ends: dict[tuple[str, int], int] = {}
    end_of = ends.get
    for rec in records:
        key = rec.topic, rec.partition
        if rec.offset >= end_of(key, 0):
            ends[key] = rec.offset + 1
    return ends


def store_offsets(conn, records: list[Record]) -> None:
    conn.executemany(
        "INSERT INTO projector_offsets (topic, partition, next_offset) VALUES (:topic, :partition, :next_offset)"
        " ON CONFLICT(topic, partition) DO UPDATE SET next_offset = CASE WHEN excluded.next_offset >"
        " projector_offsets.next_offset THEN excluded.next_offset ELSE projector_offsets.next_offset END",
        [{"topic": t, "partition": p, "next_offset": o} for (t, p), o in next_offsets(records).items()])
