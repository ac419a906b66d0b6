"""`scanledger verify`: recompute each scan's hash chains from the log and name what no longer matches.

The chains are services.domain.ledger_chain's. For a scan, verify walks the coordinator's chain from
its last event back to its first, checking that each event holds the digest of the one before; checks
every input the coordinator named (a command, a unit's result) against the record on the log; and from
each named result walks that unit's chain back through its violations, findings and file outcomes.
What it reports:

- a problem (the scan fails): a record that is not a readable event; an event whose successor holds
  another digest than its bytes give (it was changed, or is missing); an input the coordinator named
  that is not on the log as it was; a second copy of an event (the one the read models show, if it
  came first) whose data is not the chained one's;
- unvouched records (not a failure): the scan's records no chain reaches (a rejected command, a
  unit's work reported after the coordinator's last event, a log written before these chains);
- the head: the digest of the coordinator's last event, to keep outside the log (see ledger_chain).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from services.adapters.ledger_reader import LedgerReader, Meter
from services.domain import contracts as c
from services.domain.codec import PoisonRecord, decode_checked
from services.domain.ledger_chain import COVERS, PREV, SEQ, STREAM, digest
from services.domain.partitioning import partition_of
from services.gc_pause import gc_paused
from services.settings import Settings

RESULTS = frozenset({c.UNIT_COMPLETED, c.UNIT_FAILED})


@dataclass(slots=True)
class LogRecord:  # slots, not frozen: a frozen dataclass sets each field through object.__setattr__
    topic: str
    partition: int
    offset: int
    digest: str
    event: dict | None  # None: not a readable event
    error: str | None = None

    @property
    def position(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def name(self) -> str:
        if self.event is None:
            return f"the record at {self.position}"
        return f"{self.event['type']} {self.event['id']} at {self.position}"


@dataclass
class Report:
    scan_id: str
    records: int = 0
    verified: int = 0
    problems: list[tuple[tuple, str]] = field(default_factory=list)  # (log position, what)
    unvouched: list[LogRecord] = field(default_factory=list)
    head: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, rec: LogRecord | None, what: str) -> None:
        where = (rec.topic, rec.partition, rec.offset) if rec is not None else ("~",)
        self.problems.append((where, what))

    @property
    def first_problem(self) -> str | None:
        return min(self.problems)[1] if self.problems else None


def check(scan_id: str, records: list[LogRecord]) -> Report:
    """Verify one scan's records (every record keyed by its id on the projector's topics)."""
    report = Report(scan_id, records=len(records))
    by_digest: dict[str, LogRecord] = {}
    by_id: dict[str, list[LogRecord]] = defaultdict(list)
    streams: dict[str, list[LogRecord]] = defaultdict(list)
    for rec in records:
        if rec.event is None:
            report.fail(rec, f"{rec.name} is not a readable event: {rec.error}")
            continue
        by_digest.setdefault(rec.digest, rec)
        by_id[rec.event["id"]].append(rec)
        if rec.event.get(STREAM) is not None:
            streams[rec.event[STREAM]].append(rec)
    verified: set[str] = set()  # digests of records a chain vouches for

    def walk(stream: str, tail: LogRecord, anchored: bool = True) -> list[LogRecord]:
        """The chain from `tail` back to its first record; a break is a problem naming the record before it.
        Its records are vouched for when the coordinator's chain reaches the tail (`anchored`)."""
        path, current = [tail], tail
        copies = defaultdict(list)
        for rec in streams[stream]:
            copies[rec.event[SEQ]].append(rec)
        while current.event[SEQ] > 0:
            want, seq = current.event[PREV], current.event[SEQ] - 1
            before = next((r for r in copies[seq] if r.digest == want), None)
            if before is None:
                named = ", ".join(r.name for r in copies[seq]) or f"record {seq} of {stream}, which is missing"
                report.fail(min(copies[seq], key=lambda r: r.offset) if copies[seq] else current,
                            f"{named}: changed since it was written ({current.name} holds another digest for it)")
                break
            path.append(before)
            current = before
        else:
            if current.event[PREV]:
                report.fail(current, f"{current.name} starts {stream} yet names a record before it")
        if anchored:
            verified.update(r.digest for r in path)
        return path

    coordinator = streams.get(scan_id, [])
    walked: set[str] = set()
    if coordinator:
        top = max(r.event[SEQ] for r in coordinator)
        tail = max((r for r in coordinator if r.event[SEQ] == top), key=lambda r: (r.topic, r.partition, r.offset))
        path = walk(scan_id, tail)
        walked.add(scan_id)
        report.head = tail.digest
        for event_rec in reversed(path):
            for cover in filter(None, (event_rec.event.get(COVERS) or "").split(",")):
                event_id, _, want = cover.partition("=")
                found = by_digest.get(want)
                if found is None or found.event["id"] != event_id:
                    copies = by_id.get(event_id, [])
                    named = ", ".join(r.name for r in copies) or f"event {event_id}, which is missing"
                    report.fail(copies[0] if copies else event_rec,
                                f"{named}: not as it was when the coordinator acted on it ({event_rec.name}"
                                " holds another digest for it)")
                    continue
                verified.add(found.digest)
                stream = found.event.get(STREAM)
                if found.event["type"] in RESULTS and stream is not None and stream not in walked:
                    walked.add(stream)
                    walk(stream, found)
    # chains the coordinator does not reach (yet): their links are checked, their records stay unvouched
    for stream, recs in streams.items():
        if stream not in walked:
            top = max(r.event[SEQ] for r in recs)
            walk(stream, max((r for r in recs if r.event[SEQ] == top), key=lambda r: r.offset), anchored=False)
    # every copy of a vouched-for event must say what the vouched one says (the first copy is what is shown)
    for copies in by_id.values():
        good = [r for r in copies if r.digest in verified]
        if not good:
            report.unvouched.extend(copies)
            continue
        for rec in copies:
            if rec.digest not in verified and rec.event.get("data") != good[0].event.get("data"):
                report.fail(rec, f"{rec.name} is a copy of a chained event with other data")
    report.verified = sum(1 for r in records if r.event is not None and r.digest in verified)
    return report


def _records(messages) -> dict[str, list[LogRecord]]:
    out: dict[str, list[LogRecord]] = defaultdict(list)
    for m in messages:
        if m.error() or m.key() is None:
            continue
        value = m.value() or b""
        try:
            event, error = decode_checked(m.value()), None
        except PoisonRecord as exc:
            event, error = None, exc.reason
        out[m.key().decode(errors="replace")].append(
            LogRecord(m.topic(), m.partition(), m.offset(), digest(value), event, error))
    return out


def verify(settings: Settings, scan_id: str | None = None, meter: Meter | None = None) -> list[Report]:
    """Read the projector's topics (only the scan's partitions with `scan_id`) and check every scan on them."""
    t = settings.topics
    reader = LedgerReader(settings, "verify")
    # every record is kept until checked: with the collector on, its passes over them all cost more than
    # decoding them (15 µs a violation against 6)
    with gc_paused():
        try:
            tps = []
            for topic in (t.commands, t.scan_events, t.violations, t.findings):
                partitions = reader.partitions(topic)
                if scan_id is None:
                    tps += [(topic, p) for p in partitions]
                elif partitions:
                    tps.append((topic, partition_of(scan_id, len(partitions))))
            grouped = _records(reader.read(reader.ends(tps), meter))
        finally:
            reader.close()
        if scan_id is not None:
            return [check(scan_id, grouped.get(scan_id, []))]
        # a key is a scan when the coordinator wrote for it (dead letters and unknown keys aside)
        return [check(key, recs) for key, recs in sorted(grouped.items())
                if any(r.event is not None and r.event["type"] == c.SCAN_REQUESTED for r in recs)]
