"""`scanledger replay`: drop the read models and rebuild them from the ledger, in one process or, for a
log of many violations on SQLite, with helper processes that load the violations (projections.parallel_replay)."""
from __future__ import annotations

import logging
import os

from projections import parallel_replay
from projections.projector import BATCH, apply_records, replay_dead_letters, to_records, topics, try_ensure_topics
from services import stores
from services.adapters.db import connect, is_postgres, transaction
from services.adapters.deadletter import DeadLetters
from services.adapters.ledger_reader import LedgerReader, Meter, Span
from services.gc_pause import gc_paused
from services.settings import Settings
from services.stores import read_models

log = logging.getLogger("scanledger.replay")
# Below this many violations the helpers' merge and final count cost more than they save.
PARALLEL_MIN = 100_000


def replay(settings: Settings, db_url: str | None = None, as_of_ms: int | None = None,
           meter: Meter | None = None, helpers: int | None = None) -> int:
    """Drop the read models and rebuild them from offset zero up to the current end of the log, or with
    `as_of_ms` up to that instant: in each partition, the records before the first one the log
    stamped at or after it (the commands topic is stamped by the broker, the others by their
    producers), so the read models are what the projector would have shown had it caught up then.

    Run it with the projector stopped (or into another database with `db_url`). Returns the
    number of events applied (refused ones included); `meter` is told how many there are and
    each batch applied. `helpers`: processes that load the violations (projections.parallel_replay);
    by default one per core for a SQLite database and a log of PARALLEL_MIN violations or more, else
    none; PostgreSQL is always replayed in this process alone.

    Replay refuses exactly what the live projector refuses (the same decode_checked, the
    same apply, hence the same rows), but does not send those records to the dead-letter
    topic again: a record already dead-lettered by the projector or an earlier replay (same
    source topic, partition and offset) is only counted; one not there yet (the projector
    never reached it, or the code changed) is sent with dl.consumer = replay.
    """
    url = db_url or settings.db_url
    # forked first, before this process has a Kafka client or a database connection (their threads and
    # sockets are not the helpers' to share); told their shares once the log's ends are known
    team = parallel_replay.Helpers(settings, _helper_count(url, helpers))
    try:
        try_ensure_topics(settings)
        dead = replay_dead_letters(settings)
        conn = connect(url)
        # the config tables of a database replayed into, or the live one's brought to this code's schema (a
        # newer one is refused before anything is dropped); in the live one, the rows already at the version
        # the log has are left as they are (services.stores.config_log.apply)
        stores.init(conn)
        with transaction(conn):
            read_models.drop(conn)
        read_models.create(conn)
        # A replay that dies half-way is simply run again, so it need not wait for fsync.
        conn.execute("PRAGMA synchronous=OFF")
        reader = LedgerReader(settings, "replay")
        try:
            span = reader.ends([(t, p) for t in topics(settings) for p in reader.partitions(t)], as_of_ms)
            worth = helpers is not None or _violations(span, settings) >= PARALLEL_MIN
            own = team.start(span, settings.topics.violations if worth else None, meter)
            with gc_paused():  # the whole replay: its batches are acyclic, freed by reference counting
                applied = apply_span(conn, reader, own, meter, dead, team)
                applied += team.finish(conn, reader, dead)
        finally:
            reader.close()
            conn.close()
    finally:
        team.close()
    refused, sent = dead.count + team.refused, dead.sent + team.sent
    if refused:
        log.warning("replay refused %d records: %d sent to %s, %d were there already",
                    refused, sent, dead.topic, refused - sent)
    return applied


def apply_span(conn, reader: LedgerReader, span: Span, meter: Meter | None, dead: DeadLetters,
               helpers: parallel_replay.Helpers) -> int:
    """Apply the records of a span a batch at a time, each in its transaction (projections.projector);
    between batches, merge what the helpers have loaded."""
    applied = 0
    for batch in reader.batches(span, meter, BATCH):
        applied += apply_records(conn, *to_records(batch, dead), dead)
        helpers.merge_ready(conn)
    return applied


def _helper_count(url: str, asked: int | None) -> int:
    """None: one per core (used only if the log has PARALLEL_MIN violations); PostgreSQL: none."""
    if is_postgres(url):
        return 0
    return (os.cpu_count() or 1) if asked is None else max(0, asked)


def _violations(span: Span, settings: Settings) -> int:
    return sum(end - start for (t, _), (start, end) in span.items() if t == settings.topics.violations)
