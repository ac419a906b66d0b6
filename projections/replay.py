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
# Below this many violations a helper's start (a fresh interpreter, ~0.5 s) costs more than it saves.
PARALLEL_MIN = 100_000


def replay(settings: Settings, db_url: str | None = None, as_of_ms: int | None = None,
           meter: Meter | None = None, processes: int | None = None) -> int:
    """Drop the read models and rebuild them from offset zero up to the current end of the log, or with
    `as_of_ms` up to that instant: in each partition, the records before the first one the log
    stamped at or after it (the commands topic is stamped by the broker, the others by their
    producers), so the read models are what the projector would have shown had it caught up then.

    Run it with the projector stopped (or into another database with `db_url`). Returns the
    number of events applied (refused ones included); `meter` is told how many there are and
    each batch applied. `processes`: how many to use (default: one per core for a SQLite database
    and a log of at least PARALLEL_MIN violations, else one; PostgreSQL is always replayed in one).

    Replay refuses exactly what the live projector refuses (the same decode_checked, the
    same apply, hence the same rows), but does not send those records to the dead-letter
    topic again: a record already dead-lettered by the projector or an earlier replay (same
    source topic, partition and offset) is only counted; one not there yet (the projector
    never reached it, or the code changed) is sent with dl.consumer = replay.
    """
    try_ensure_topics(settings)
    dead = replay_dead_letters(settings)
    url = db_url or settings.db_url
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
    helpers = None
    try:
        span = reader.ends([(t, p) for t in topics(settings) for p in reader.partitions(t)], as_of_ms)
        shares = parallel_replay.split(span, settings.topics.violations, _processes(url, span, settings, processes))
        if len(shares) > 1:
            helpers = parallel_replay.Helpers(settings, shares[1:], meter)
        with gc_paused():  # the whole replay: its batches are acyclic, freed by reference counting
            applied = apply_span(conn, reader, shares[0], meter, dead, helpers)
            if helpers is not None:
                applied += helpers.finish(conn, reader, dead)
    finally:
        if helpers is not None:
            helpers.close()
        reader.close()
        conn.close()
    refused = dead.count + (helpers.refused if helpers else 0)
    if refused:
        sent = dead.sent + (helpers.sent if helpers else 0)
        log.warning("replay refused %d records: %d sent to %s, %d were there already",
                    refused, sent, dead.topic, refused - sent)
    return applied


def apply_span(conn, reader: LedgerReader, span: Span, meter: Meter | None, dead: DeadLetters,
               helpers: parallel_replay.Helpers | None = None) -> int:
    """Apply the records of a span a batch at a time, each in its transaction (projections.projector);
    between batches, merge what the helpers have loaded."""
    applied = 0
    for batch in reader.batches(span, meter, BATCH):
        applied += apply_records(conn, *to_records(batch, dead), dead)
        if helpers is not None:
            helpers.merge_ready(conn)
    return applied


def _processes(url: str, span: Span, settings: Settings, asked: int | None) -> int:
    if asked is not None:
        return 1 if is_postgres(url) else max(1, asked)
    violations = sum(end - start for (t, _), (start, end) in span.items() if t == settings.topics.violations)
    return 1 if is_postgres(url) or violations < PARALLEL_MIN else os.cpu_count() or 1
