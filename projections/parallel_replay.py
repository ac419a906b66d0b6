"""Replay on more cores: helper processes load the violations topic's partitions into scratch files.

The violations are the bulk of the ledger, and one process pays about 10 µs a violation (fetch, decode,
insert: docs/performance.md). The violations topic's partitions are split between the replay itself and
its helpers; each helper applies its share through the projector's own apply_records into scratch SQLite
files of its own (chunks of CHUNK records), so it refuses and dead-letters exactly what the projector
would. The replay applies every other partition as before and, between its batches, merges each
finished chunk into the read model in C (ATTACH, INSERT … SELECT), overlapping the helpers' loads.

A merged violation is not counted on its scan as it goes in; at the end, `finish` sets every scan's
violations_seen to its violations in the table (what the live projector's counts add up to) and
finalizes every scan. That is the order a live projector may meet the same records in (the violations
topic lagging the others), and finalize's end state does not depend on the order scans finish in
(services.readmodels.scans.finalize). A record of another type on a helper's partitions (no producer
writes one) is left to the replay, which reads it again and applies it after the merge.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from projections.projector import BATCH, apply_records, placeholder, replay_dead_letters, to_records
from services import logs
from services.adapters.db import connect, transaction
from services.adapters.ledger_reader import LedgerReader, Meter, Span
from services.domain.contracts import VIOLATION_DETECTED
from services.gc_pause import gc_paused
from services.readmodels import scans, violations
from services.settings import Settings
from services.stores import read_models

log = logging.getLogger("scanledger.replay")
CHUNK = 100_000  # records a scratch file holds: merged while the helper loads the next
# A partition of violations costs the replay about this much of what it costs a helper (the merge):
# the split gives the replay's own share less for it.
MERGE_COST = 0.25
_COLUMNS = ", ".join(f'"{c}"' for c in violations.COLUMNS)


class ReplayFailed(Exception):
    """A helper process died or stopped on an error: the replay is incomplete (run it again)."""


def split(span: Span, violations_topic: str, processes: int) -> list[Span]:
    """The span in `processes` shares: the first (the replay's own) has every partition but the violations
    topic's, which are dealt out, largest first, to the share with the least work so far."""
    own = {tp: r for tp, r in span.items() if tp[0] != violations_topic}
    shares: list[Span] = [own] + [{} for _ in range(processes - 1)]
    load = [float(sum(end - start for start, end in own.values()))] + [0.0] * (processes - 1)
    bulk = sorted(((tp, r) for tp, r in span.items() if tp[0] == violations_topic),
                  key=lambda item: item[1][0] - item[1][1])
    for tp, (start, end) in bulk:
        i = min(range(processes), key=load.__getitem__)
        shares[i][tp] = (start, end)
        load[i] += end - start
        if i:
            load[0] += MERGE_COST * (end - start)
    return [share for i, share in enumerate(shares) if i == 0 or share]


@dataclass
class _Helper:
    process: multiprocessing.process.BaseProcess
    pipe: object
    share: Span
    done: bool = False


@dataclass
class Helpers:
    """The running helpers, from the replay's side: what they read goes to its meter, what they loaded
    into its database (merge_ready between its own batches, finish at the end)."""
    settings: Settings
    shares: list[Span]
    meter: Meter | None
    applied: int = 0
    refused: int = 0  # counted as DeadLetters.count
    sent: int = 0  # DeadLetters.sent
    _helpers: list[_Helper] = field(default_factory=list)
    _ready: list[str] = field(default_factory=list)
    _foreign: set[tuple[str, int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="scanledger-replay-")
        if self.meter is not None:
            self.meter.total = (self.meter.total or 0) + sum(e - s for share in self.shares for s, e in share.values())
        spawn = multiprocessing.get_context("spawn")  # not fork: librdkafka's threads do not survive one
        for i, share in enumerate(self.shares):
            ours, theirs = spawn.Pipe(duplex=False)
            process = spawn.Process(target=_load, name=f"replay-helper-{i}", daemon=True,
                                    args=(self.settings, share, os.path.join(self.directory, str(i)), theirs,
                                          logging.getLogger().level))
            process.start()
            theirs.close()  # the helper's end: once it exits, ours reads EOF
            self._helpers.append(_Helper(process, ours, share))

    def merge_ready(self, conn) -> None:
        """Merge the chunks the helpers have finished so far (not waiting for more)."""
        for helper in self._helpers:
            while not helper.done and helper.pipe.poll():
                self._take(helper)
        self._merge(conn)

    def finish(self, conn, reader: LedgerReader, dead) -> int:
        """Wait for every helper, merging its chunks as they come; then apply the records of other types
        the helpers left, count every scan's violations and finalize every scan. Returns the records
        the helpers applied."""
        for helper in self._helpers:
            while not helper.done:
                helper.pipe.poll(None)
                self._take(helper)
                self._merge(conn)
        if self._foreign:
            _apply_foreign(conn, reader, self._foreign, dead)
        settle(conn)
        return self.applied

    def close(self) -> None:
        for helper in self._helpers:
            if helper.process.is_alive():
                helper.process.terminate()
            helper.process.join()
            helper.pipe.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _take(self, helper: _Helper) -> None:
        try:
            message = helper.pipe.recv()
        except EOFError:
            helper.process.join()
            raise ReplayFailed(f"replay helper {helper.process.name} (partitions {_partitions(helper.share)})"
                               f" exited with code {helper.process.exitcode} before it finished") from None
        kind, value = message
        if kind == "read":
            if self.meter is not None:
                self.meter.update(value)
        elif kind == "chunk":
            self._ready.append(value)
        elif kind == "failed":
            raise ReplayFailed(f"replay helper {helper.process.name} (partitions {_partitions(helper.share)})"
                               f" failed: {value}")
        else:  # "done"
            applied, refused, sent, foreign = value
            self.applied += applied
            self.refused += refused
            self.sent += sent
            self._foreign.update(foreign)
            helper.done = True

    def _merge(self, conn) -> None:
        while self._ready:
            merge(conn, self._ready.pop(0))


def merge(conn, path: str) -> None:
    """A helper's chunk into the read model, in one transaction, and the file removed: its violations
    (one already there is not inserted twice) and its offsets."""
    conn.execute("ATTACH DATABASE ? AS chunk", (path,))
    try:
        with transaction(conn):
            conn.execute(f"INSERT INTO rm_violations ({_COLUMNS}) SELECT {_COLUMNS} FROM chunk.rm_violations"
                         " WHERE true ON CONFLICT(violation_id) DO NOTHING")
            conn.execute("INSERT INTO projector_offsets (topic, partition, next_offset)"
                         " SELECT topic, partition, next_offset FROM chunk.projector_offsets WHERE true"
                         " ON CONFLICT(topic, partition) DO UPDATE"
                         " SET next_offset = max(next_offset, excluded.next_offset)")
    finally:
        conn.execute("DETACH DATABASE chunk")
    os.remove(path)


def settle(conn) -> None:
    """Once every violation is in: each scan's violations_seen is its violations in the table (what the
    live projector's counts add up to), and every scan is finalized that can be."""
    with transaction(conn):
        conn.execute("UPDATE rm_scans SET violations_seen ="
                     " (SELECT COUNT(*) FROM rm_violations v WHERE v.scan_id = rm_scans.scan_id)")
        for (scan_id,) in conn.execute("SELECT scan_id FROM rm_scans ORDER BY scan_id").fetchall():
            scans.finalize(conn, scan_id)


def _partitions(share: Span) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(share))


def _apply_foreign(conn, reader: LedgerReader, foreign: set[tuple[str, int, int]], dead) -> None:
    """The records of other types than violations the helpers found on their partitions, read again and
    applied in their partitions' order."""
    span: Span = {}
    for t, p, o in foreign:
        start, end = span.get((t, p), (o, o + 1))
        span[(t, p)] = (min(start, o), max(end, o + 1))
    for batch in reader.batches(span, None, BATCH):
        wanted = [m for m in batch if m.error() or (m.topic(), m.partition(), m.offset()) in foreign]
        apply_records(conn, *to_records(wanted, dead), dead)


class _ToPipe:
    """A helper's meter: each batch read is told to the replay, which counts it on its own."""

    def __init__(self, pipe):
        self.pipe, self.total = pipe, None

    def update(self, n: int) -> None:
        self.pipe.send(("read", n))


class _Chunk:
    """A scratch file with the read models' tables, written as the replay writes its database but never
    synced (a helper that dies fails the replay, which is run again)."""

    def __init__(self, stem: str, number: int):
        self.number, self.path = number, f"{stem}-{number}.db"
        self.conn = connect(f"sqlite:///{self.path}")
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        read_models.create(self.conn)
        self.conn.execute("DROP INDEX rm_violations_page")  # nothing reads it here; the read model has its own
        self.records = 0

    def close(self) -> str:
        self.conn.close()
        return self.path


def _load(settings: Settings, share: Span, stem: str, pipe, log_level: int) -> None:
    """A helper process: apply its share of the violations into chunks, telling the replay each chunk
    finished, then what it applied and refused. Any error is told too, then exits 1."""
    logs.configure(log_level)
    try:
        dead = replay_dead_letters(settings)
        reader = LedgerReader(settings, "replay")
        chunk, applied, foreign = _Chunk(stem, 0), 0, []
        try:
            with gc_paused():
                for batch in reader.batches(share, _ToPipe(pipe), BATCH):
                    records, sources = to_records(batch, dead)
                    records = [_violation_or_placeholder(rec, foreign) for rec in records]
                    applied += apply_records(chunk.conn, records, sources, dead)
                    chunk.records += len(records)
                    if chunk.records >= CHUNK:
                        pipe.send(("chunk", chunk.close()))
                        chunk = _Chunk(stem, chunk.number + 1)
            pipe.send(("chunk", chunk.close()))
        finally:
            reader.close()
        pipe.send(("done", (applied, dead.count, dead.sent, foreign)))
    except BaseException as exc:
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


def _violation_or_placeholder(rec, foreign: list[tuple[str, int, int]]):
    """A violation (or a refused record's placeholder) is the helper's; a record of another type is the
    replay's to apply after the merge, here only a placeholder that stores its offset."""
    if rec.type is None or rec.type == VIOLATION_DETECTED:
        return rec
    foreign.append((rec.topic, rec.partition, rec.offset))
    return placeholder(rec.topic, rec.partition, rec.offset)
