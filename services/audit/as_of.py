"""One scan as it stood at an instant, computed from the log, not from the live read models.

Its records up to that instant (its RunScan and commands, its scan events, violations and findings:
keyed by its id, so one partition of each topic) are applied to read models of its own, in memory,
with the projector's own code (services.readmodels); the API then shows them with its usual views.
A compliance scan's delta compares it with the previous finalized, completed run of its policy:
the earlier runs are applied too, newest first, until one is that run as of the instant.

Configuration is not on the log yet, nor is a BYOC chunk's lease (the API's): as of an instant, a
chunk a worker held and had not yet reported on shows as waiting.

What "as of T" means: in each partition, the records before the first one stamped at or after T
(the commands topic is stamped by the broker, the others by their producers), which is what the
projector would have shown at T had it caught up.
"""
from __future__ import annotations

import sqlite3

from services import stores
from services.adapters.db import transaction
from services.adapters.ledger_reader import LedgerReader
from services.domain import contracts as c
from services.domain.codec import PoisonRecord, decode_checked
from services.domain.kinds import kind_of
from services.domain.partitioning import partition_of
from services.readmodels.apply import Record, apply_batch, decode_record
from services.settings import Settings
from services.stores import read_models

SKEW_MS = 5 * 60_000  # nothing of a scan precedes its RunScan on the log, but producers' clocks may lag the broker's
BATCH = 5_000


def scan_as_of(settings: Settings, scan_id: str, as_of_ms: int) -> sqlite3.Connection | None:
    """Read models holding the scan as of `as_of_ms` (None: it had not been requested by then)."""
    reader = LedgerReader(settings, "as-of")
    try:
        runs = _run_scans(reader, settings, as_of_ms)
        if scan_id not in runs:
            return None
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        read_models.create(conn)
        stores.init(conn)  # empty: what is not on the log (a BYOC chunk's lease) is not known as of an instant
        mine, logged_at = runs[scan_id]
        _apply_keyed(reader, settings, conn, scan_id, logged_at - SKEW_MS, as_of_ms)
        for earlier, (_, at) in _earlier_runs(mine, runs):
            _apply_keyed(reader, settings, conn, earlier, at - SKEW_MS, as_of_ms)
            row = conn.execute("SELECT finalized, status FROM rm_scans WHERE scan_id = ?", (earlier,)).fetchone()
            if row is not None and row["finalized"] and row["status"] == "completed":
                break  # the run a delta compares with; the older ones cannot change it
        return conn
    finally:
        reader.close()


def _run_scans(reader: LedgerReader, settings: Settings, as_of_ms: int) -> dict[str, tuple[dict, int]]:
    """Every RunScan on the log by then: scan id -> (its request, its record's timestamp)."""
    topic = settings.topics.commands
    runs = {}
    for m in reader.read(reader.ends([(topic, p) for p in reader.partitions(topic)], as_of_ms)):
        if m.error():
            continue
        try:
            event = decode_checked(m.value())
        except PoisonRecord:
            continue
        if event["type"] == c.RUN_SCAN and event["subject"] not in runs:
            runs[event["subject"]] = (event["data"], m.timestamp()[1])
    return runs


def _earlier_runs(mine: dict, runs: dict[str, tuple[dict, int]]) -> list[tuple[str, tuple[dict, int]]]:
    """The runs a delta may compare `mine` with, newest first (none for a kind without a delta)."""
    if not kind_of(mine).has_delta or not mine.get("policy"):
        return []
    same = [(scan_id, run) for scan_id, run in runs.items()
            if run[0].get("workspace_id") == mine["workspace_id"] and run[0].get("kind") == mine["kind"]
            and (run[0].get("policy") or {}).get("id") == mine["policy"]["id"]
            and (run[0]["requested_at"], scan_id) < (mine["requested_at"], mine["scan_id"])]
    return sorted(same, key=lambda item: (item[1][0]["requested_at"], item[0]), reverse=True)


def _apply_keyed(reader: LedgerReader, settings: Settings, conn, key: str, since_ms: int, as_of_ms: int) -> None:
    """Apply every record keyed `key` on the projector's topics, stamped from `since_ms` to before `as_of_ms`."""
    t = settings.topics
    tps = []
    for topic in (t.commands, t.scan_events, t.violations, t.findings):
        partitions = reader.partitions(topic)
        if partitions:
            tps.append((topic, partition_of(key, len(partitions))))
    wanted = key.encode()
    batch: list[Record] = []
    for m in reader.read(reader.ends(tps, as_of_ms, since_ms)):
        if m.error() or m.key() != wanted:
            continue
        try:
            batch.append(decode_record(m))
        except PoisonRecord:
            continue  # refused by the projector too (dead-lettered): it changed no read model
        if len(batch) >= BATCH:
            _apply(conn, batch)
            batch = []
    _apply(conn, batch)


def _apply(conn, records: list[Record]) -> None:
    """As the projector applies a batch: all of it, or (one record failing) each record on its own,
    the failing one left out as the projector dead-letters it."""
    if not records:
        return
    try:
        with transaction(conn):
            apply_batch(conn, records)
    except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError,
            KeyError, TypeError, ValueError):
        for rec in records:
            try:
                with transaction(conn):
                    apply_batch(conn, [rec])
            except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError,
                    KeyError, TypeError, ValueError):
                continue
