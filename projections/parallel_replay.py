"""Replay on more cores: helper processes load the violations topic's partitions into scratch files.

The violations are the bulk of the ledger, and one process pays about 10 µs a violation (fetch, decode,
insert: docs/performance.md). The violations topic's partitions are split between helper processes, forked
when the replay starts; each applies its share through the projector's own apply_records into scratch
SQLite files of its own (chunks of CHUNK records: small, with the primary key alone, so about half the
cost of inserting into the read model), so it refuses and dead-letters exactly what the projector
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

import contextlib
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from projections.projector import BATCH, apply_records, placeholder, replay_dead_letters, to_records
from services.adapters.db import connect, transaction
from services.adapters.ledger_reader import LedgerReader, Meter, Span
from services.domain.contracts import VIOLATION_DETECTED
from services.gc_pause import gc_paused
from services.readmodels import scans, violations
from services.settings import Settings
from services.stores import read_models

log = logging.getLogger("scanledger.replay")
CHUNK = 100_000  # records a scratch file holds: merged while the helper loads the next
_COLUMNS = ", ".join(f'"{c}"' for c in violations.COLUMNS)


class ReplayFailed(Exception):
    """A helper process died or stopped on an error: the replay is incomplete (run it again)."""


def split(span: Span, violations_topic: str, helpers: int) -> tuple[Span, list[Span]]:
    """The replay's own share (every partition but the violations topic's) and each helper's: the
    violations topic's partitions dealt out, largest first, to the helper with the fewest records so far."""
    own = {tp: r for tp, r in span.items() if tp[0] != violations_topic}
    shares: list[Span] = [{} for _ in range(helpers)]
    load = [0] * helpers
    for tp, (start, end) in sorted(((tp, r) for tp, r in span.items() if tp[0] == violations_topic),
                                   key=lambda item: item[1][0] - item[1][1]):
        i = min(range(helpers), key=load.__getitem__)
        shares[i][tp] = (start, end)
        load[i] += end - start
    return own, shares


@dataclass
class _Helper:
    process: multiprocessing.process.BaseProcess
    pipe: Connection
    share: Span = field(default_factory=dict)
    done: bool = True  # until it is given a share


class Helpers:
    """The helpers, from the replay's side: forked when it starts, given their shares (`start`); what they
    read goes to its meter, what they loaded into its database (merge_ready between its own batches,
    finish at the end)."""

    def __init__(self, settings: Settings, count: int):
        self.directory = tempfile.mkdtemp(prefix="scanledger-replay-") if count else ""
        self.applied = self.refused = self.sent = 0  # refused and sent: as DeadLetters.count and .sent
        self.meter: Meter | None = None
        self._helpers: list[_Helper] = []
        self._ready: list[str] = []
        self._foreign: set[tuple[str, int, int]] = set()
        # fork, not spawn: a fresh interpreter re-imports the product and the command line (~0.5 CPU s)
        fork = multiprocessing.get_context("fork")
        for i in range(count):
            ours, theirs = fork.Pipe()
            process = fork.Process(target=_serve, name=f"replay-helper-{i}", daemon=True,
                                   args=(settings, os.path.join(self.directory, str(i)), theirs,
                                         [*(helper.pipe for helper in self._helpers), ours]))
            process.start()
            theirs.close()  # the helper's end: once it exits, ours reads EOF
            self._helpers.append(_Helper(process, ours))

    def start(self, span: Span, violations_topic: str | None, meter: Meter | None) -> Span:
        """Give the helpers their shares of the violations topic (with None, nothing: they exit); returns
        the replay's own share."""
        own, shares = (split(span, violations_topic, len(self._helpers)) if violations_topic and self._helpers
                       else (span, []))
        self.meter = meter
        if meter is not None:
            meter.total = (meter.total or 0) + sum(e - s for share in shares for s, e in share.values())
        for i, helper in enumerate(self._helpers):
            helper.share = shares[i] if i < len(shares) else {}
            helper.done = not helper.share
            try:
                helper.pipe.send(helper.share or None)
            except OSError:  # it died before it was told
                self._failed(helper)
        return own

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
        if not any(helper.share for helper in self._helpers):
            return 0
        while waiting := {helper.pipe: helper for helper in self._helpers if not helper.done}:
            for pipe in wait(list(waiting)):  # whichever has something to say: its chunks are merged first
                self._take(waiting[pipe])
            self._merge(conn)
        if self._foreign:
            _apply_foreign(conn, reader, self._foreign, dead)
        settle(conn)
        return self.applied

    def close(self) -> None:
        for helper in self._helpers:
            helper.pipe.close()  # one still waiting for its share reads EOF and exits
            if helper.process.is_alive() and not helper.done:
                helper.process.terminate()
            helper.process.join()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _failed(self, helper: _Helper) -> None:
        helper.process.join()
        raise ReplayFailed(f"replay helper {helper.process.name} ({_partitions(helper.share)})"
                           f" exited with code {helper.process.exitcode} before it finished") from None

    def _take(self, helper: _Helper) -> None:
        try:
            message = helper.pipe.recv()
        except EOFError:
            self._failed(helper)
        kind, value = message
        if kind == "read":
            if self.meter is not None:
                self.meter.update(value)
        elif kind == "chunk":
            self._ready.append(value)
        elif kind == "failed":
            raise ReplayFailed(f"replay helper {helper.process.name} ({_partitions(helper.share)}) failed: {value}")
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
        # oldest first: finalizing a scan recomputes a finalized successor's delta (each delta reads two scans'
        # signatures, 65 ms for a 128k-violation scan), and in this order no successor is finalized yet
        for (scan_id,) in conn.execute("SELECT scan_id FROM rm_scans ORDER BY created_at, scan_id").fetchall():
            scans.finalize(conn, scan_id)


def _partitions(share: Span) -> str:
    """A share in a few words: its topic and partition numbers."""
    topics = sorted({t for t, _ in share})
    return "; ".join(f"{t} partitions {', '.join(str(p) for tt, p in sorted(share) if tt == t)}" for t in topics)


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


class Chunk:
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


def _serve(settings: Settings, directory: str, pipe: Connection, replays: list[Connection]) -> None:
    """A helper process: wait for its share (None: nothing to do) and load it, then wait until the replay
    closes its end of the pipe (done with the chunks, or killed) and remove the helper's scratch files.
    `replays`: the replay's ends of the pipes, which the fork copied; closed, or its own would never
    read EOF."""
    for end in replays:
        end.close()
    try:
        share = pipe.recv()
        if share is not None:
            _load(settings, share, directory, pipe)
        pipe.recv()
    except EOFError:
        pass
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):  # the last helper out removes the replay's directory too
            os.rmdir(os.path.dirname(directory))


def _load(settings: Settings, share: Span, directory: str, pipe: Connection) -> None:
    """Apply a share into chunks, telling the replay each chunk finished, then what it applied and
    refused. An error is told too (if the replay is still there to hear it), then the helper exits 1."""
    started = time.perf_counter()
    try:
        os.makedirs(directory)
        dead = replay_dead_letters(settings)
        reader = LedgerReader(settings, "replay")
        chunk, applied, foreign = Chunk(os.path.join(directory, "chunk"), 0), 0, []
        try:
            with gc_paused():
                for batch in reader.batches(share, _ToPipe(pipe), BATCH):
                    records, sources = to_records(batch, dead)
                    records = [_violation_or_placeholder(rec, foreign) for rec in records]
                    applied += apply_records(chunk.conn, records, sources, dead)
                    chunk.records += len(records)
                    if chunk.records >= CHUNK:
                        pipe.send(("chunk", chunk.close()))
                        chunk = Chunk(os.path.join(directory, "chunk"), chunk.number + 1)
            pipe.send(("chunk", chunk.close()))
        finally:
            reader.close()
        log.info("replay helper: %d records of %s in %.2f s, %.2f CPU s", applied, _partitions(share),
                 time.perf_counter() - started, time.process_time())
        pipe.send(("done", (applied, dead.count, dead.sent, foreign)))
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the replay is gone
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


def _violation_or_placeholder(rec, foreign: list[tuple[str, int, int]]):
    """A violation (or a refused record's placeholder) is the helper's; a record of another type is the
    replay's to apply after the merge, here only a placeholder that stores its offset."""
    if rec.type is None or rec.type == VIOLATION_DETECTED:
        return rec
    foreign.append((rec.topic, rec.partition, rec.offset))
    return placeholder(rec.topic, rec.partition, rec.offset)
