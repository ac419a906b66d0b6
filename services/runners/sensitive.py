"""A sensitive-data scan's I/O half (services.runners): enumerating its connectors into chunks,
and running one chunk: every file read through its connector and through the detectors.

Planning lists each connector (filtered by the scan's prefixes and file types, at most
max_files in all); a connector that cannot be listed is recorded as failed, and the
enumeration is partial if another could be listed, failed if none could. What it found goes
on the ledger (scan.enumerated and the chunks of scan.started), never in a side table.

Running a chunk publishes, per file, its findings (findings topic) then its outcome
(scanned / skipped / failed with the reason), with progress now and then, then the chunk's
result once everything before it is flushed. It checks for a cancel between groups of files.
A chunk's files are read on a few threads, a group ahead of the detectors (_ReadAhead): an S3
GET waits on the network, not on this process, so the next group is fetched while this one is
scanned; a local directory's files are read one after another, in one task per group.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import orjson

from services.adapters.connectors import Connector, ConnectorError, ResourceError, connector_for
from services.adapters.file_cells import SKIP_TOO_BIG, FileScan, Limits, scan_files
from services.adapters.kafka import Publisher
from services.domain import contracts as c
from services.domain.chunk_reports import event_id, finding_key
from services.domain.detectors import Engine, Finding, selected_detectors
from services.domain.envelope import follow, iso, utcnow
from services.domain.kinds import Plan
from services.domain.kinds.sensitive import baseline_versions, chunks
from services.domain.llm_review import Verdict, adjusted_confidence
from services.domain.vocabulary import EVALUATOR_SOURCE as SOURCE
from services.runners.llm_assist import Reviewer
from services.settings import Settings

log = logging.getLogger("scanledger.sensitive")

PROGRESS_EVERY_S = 1.0  # a chunk's progress event at most this often (each file has its outcome event too)
# Files scanned as one batch, between checks for a cancel: 64 files or about 8 MB (16 files paid the engine's
# cost per batch ~10% more often on the bench's corpus of ~100 kB files; the bytes bound the memory)
GROUP_FILES, GROUP_BYTES = 64, 8 << 20
READ_THREADS = 4  # a chunk's reads in flight at once (the next group's files, while this group is scanned)
# Connector types whose reads never wait on a network: a group's files are read in one task, in turn (a task
# per file cost its hand-overs between threads: 1,500 local files' reads 0.26 -> 0.20 s of CPU beside the scan)
LOCAL_TYPES = frozenset({"local_dir"})
UNCHANGED, TIMEOUT = "unchanged", "timeout"  # skip reasons: an incremental scan's baseline covers it; past the deadline


def plan_sensitive(request: dict, blobs, settings: Settings) -> Plan:
    """{"units": the chunks' plans, "enumeration": what ScanEnumerated records (without scan_id and time)}."""
    opts = request["options"]
    max_files = opts.get("max_files")
    files: list[dict] = []
    listings: list[dict] = []
    for snap in request["connectors"]:
        found: list[dict] = []
        try:
            connector = connector_for(settings, request["workspace_id"], snap["type"], snap["config"])
            try:
                for res in connector.list_resources(opts.get("prefixes") or (), opts.get("file_types")):
                    if max_files is not None and len(files) + len(found) >= max_files:
                        break
                    if res.kind != "file" and snap["type"] != "sqlite":
                        continue
                    found.append({"connector_id": snap["id"], "name": res.name, "size": res.size,
                                  "version": res.version})
            finally:
                connector.close()
        except Exception as exc:  # any listing error (ConnectorError, the S3 client's, OSError) fails that connector
            log.warning("scan %s: connector %s cannot be listed: %s", request["scan_id"], snap["id"], exc)
            listings.append({"connector_id": snap["id"], "status": "failed", "files": 0, "error": str(exc)})
            continue
        files += found
        listings.append({"connector_id": snap["id"], "status": "listed", "files": len(found), "error": None})
    listed = sum(1 for x in listings if x["status"] == "listed")
    status = "complete" if listed == len(listings) else ("partial" if listed else "failed")
    if request.get("baseline_blob"):  # an incremental scan: the unchanged files are marked, not read
        files = baseline_versions(request, files, orjson.loads(blobs.get(request["baseline_blob"])))
    units = chunks(request["scan_id"], files, opts["max_workers"]) if status != "failed" else []
    for unit in units:  # a chunk's files go to the blob store: events and work stay small at any scan size
        unit["blob"] = blobs.put(orjson.dumps(unit.pop("files")))
    return Plan(units, {"status": status, "total_enumerated": len(files), "connectors": listings,
                        "workers_requested": len(units)})


def finding_id(connector_id: str, name: str, f: Finding) -> str:
    """The same value at the same place is the same finding, whichever run, attempt or worker found it."""
    return finding_key(connector_id, name, f.row, f.column, f.line, f.detector, f.start)


def _event(cause: dict, type_: str, data: dict, time: str | None = None) -> dict:
    """A chunk's report event, its id a function of its data (as the API gives a BYOC worker's)."""
    return follow(cause, type_, data, id=event_id(type_, data), source=SOURCE, time=time)


def outcome_data(work: dict, file: dict, index: int, status: str, reason: str | None, size: int, findings: int,
                 occurrences: int) -> dict:
    """c.FileOutcome(...).model_dump() of a file's outcome, built as a plain dict: the model's validation
    and dump cost ~20 µs an event, and the values here are the runner's own (a unit test holds the two
    equal, key order included)."""
    return {"scan_id": work["scan_id"], "unit_id": work["unit_id"], "attempt": work.get("attempt", 0),
            "connector_id": file["connector_id"], "name": file["name"], "index": index, "status": status,
            "reason": reason, "size": size, "version": file["version"], "findings": findings,
            "occurrences": occurrences}


class _Connectors:
    """The chunk's connectors, opened once each (an unusable one fails its files, with the reason)."""

    def __init__(self, work: dict, workspace_id: str, settings: Settings):
        self.snaps = {s["id"]: s for s in work.get("connectors") or []}
        self.workspace_id, self.settings = workspace_id, settings
        self.open: dict[str, Connector | ConnectorError] = {}
        self._lock = threading.Lock()  # the read threads open a connector once between them

    def get(self, connector_id: str) -> Connector:
        with self._lock:
            if connector_id not in self.open:
                snap = self.snaps[connector_id]
                try:
                    self.open[connector_id] = connector_for(self.settings, self.workspace_id, snap["type"],
                                                            snap["config"])
                except ConnectorError as exc:
                    self.open[connector_id] = exc
            got = self.open[connector_id]
        if isinstance(got, ConnectorError):
            raise ResourceError(str(got), got.reason)
        return got

    def close(self) -> None:
        for got in self.open.values():
            if not isinstance(got, ConnectorError):
                got.close()


def read_one(connectors: _Connectors, file: dict, limits: Limits):
    """(bytes, the name its format is told by) or the file's outcome (status, reason, size, findings)."""
    try:
        data = connectors.get(file["connector_id"]).read_bytes(file["name"], limits.max_bytes)
    except ResourceError as exc:
        if exc.reason == "too_large":
            return "skipped", SKIP_TOO_BIG, 0, []
        return "failed", exc.reason, 0, []
    except Exception as exc:  # a reader's error no connector wrapped: this file fails with its kind
        log.warning("reading %s failed", file["name"], exc_info=True)
        return "failed", f"unreadable: {type(exc).__name__}", 0, []
    # a sqlite table's bytes are the table as CSV (services/adapters/connectors/)
    name = file["name"] + ".csv" if connectors.snaps[file["connector_id"]]["type"] == "sqlite" else file["name"]
    return data, name


def read_locally(connectors: _Connectors, file: dict) -> bool:
    return connectors.snaps[file["connector_id"]]["type"] in LOCAL_TYPES


def read_all(connectors: _Connectors, files: list[dict], limits: Limits) -> list:
    return [read_one(connectors, f, limits) for f in files]


def scan_group(connectors: _Connectors, files: list[dict], engine: Engine, limits: Limits,
               read: list | None = None) -> list[tuple]:
    """Each file's (status, reason, size, findings): the readable ones through the detectors as one batch
    (the engine has a cost per batch that small files would otherwise each pay). `read`: read_one of
    each file, read ahead (_ReadAhead); without it the files are read here, one after another."""
    read = read_all(connectors, files, limits) if read is None else read
    todo = [r for r in read if len(r) == 2]
    try:
        results = iter(scan_files(todo, engine, limits)) if todo else iter(())
    except Exception:  # one file the decoders trip on: each alone, so only that one fails
        log.warning("a batch of %d files failed to scan; scanning them one by one", len(todo), exc_info=True)
        results = iter([_scan_alone(data, name, engine, limits) for data, name in todo])
    out = []
    for r in read:
        if len(r) == 2:
            res = next(results)
            out.append((res.status, res.reason, res.size, res.findings))
        else:
            out.append(r)
    return out


def _scan_alone(data: bytes, name: str, engine: Engine, limits: Limits):
    try:
        return scan_files([(data, name)], engine, limits)[0]
    except Exception as exc:
        log.warning("scanning %s failed", name, exc_info=True)
        return FileScan("failed", f"parse error: {type(exc).__name__}")


class _ReadAhead:
    """A chunk's groups (first index, files), each one's files read on a few threads while the group
    before it is scanned: a group is yielded once its reads and the next group's are under way. At
    most two groups' bytes are held (the one being scanned, the next one), each bounded as `groups`
    bounds it; every read is read_one, so the size limit and the failure reasons are a read in
    place's. `results()` are the current group's, of its files not marked unchanged, in order."""

    def __init__(self, connectors: _Connectors, limits: Limits, groups: Iterable[tuple[int, list[dict]]],
                 threads: int = READ_THREADS):
        self._connectors, self._limits, self._groups = connectors, limits, iter(groups)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="chunk-read")
        self._current: list[tuple[Future, int | None]] = []  # a file's read: its task, its place in the task's
        self._stopped = False

    def __iter__(self) -> Iterator[tuple[int, list[dict]]]:
        ahead = self._start(next(self._groups, None))
        while ahead is not None:
            (first, group), self._current = ahead
            ahead = self._start(next(self._groups, None))
            yield first, group

    def _start(self, item: tuple[int, list[dict]] | None):
        if item is None:
            return None
        wanted = [] if self._stopped else [f for f in item[1] if not f.get("unchanged")]
        local = [f for f in wanted if read_locally(self._connectors, f)]
        together = self._pool.submit(read_all, self._connectors, local, self._limits) if local else None
        reads, place = [], 0
        for f in wanted:
            if together is not None and read_locally(self._connectors, f):
                reads.append((together, place))
                place += 1
            else:
                reads.append((self._pool.submit(read_one, self._connectors, f, self._limits), None))
        return item, reads

    def results(self) -> list:
        """read_one of each file of the current group (read_one raises nothing: result() raises nothing of its own)."""
        return [task.result() if place is None else task.result()[place] for task, place in self._current]

    def stop(self) -> None:
        """Start no more reads (the groups left are not scanned: the scan's deadline passed)."""
        self._stopped = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Reads not started are dropped; those under way end (each within the connector's timeouts)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def groups(files: list[dict], max_files: int | None = None, max_bytes: int | None = None):
    """(first index, files) of consecutive files, at most max_files or about max_bytes each."""
    max_files, max_bytes = max_files or GROUP_FILES, max_bytes or GROUP_BYTES
    start, size = 0, 0
    for i, f in enumerate(files):
        size += f.get("size") or 0
        if i + 1 - start >= max_files or size >= max_bytes or i + 1 == len(files):
            yield start, files[start:i + 1]
            start, size = i + 1, 0


def run_chunk(message: dict, blobs, publisher: Publisher, settings: Settings,
              should_stop: Callable[[], bool] = lambda: False) -> None:
    """Scan a chunk's files; publish findings, outcomes and progress, then (flushed) the chunk's result.
    A cancel is checked, and the deadline, between groups of a few files."""
    work = message["data"]
    topics = settings.topics
    attempt = work.get("attempt", 0)
    # an external worker's chunk carries its files (byoc.worker); an evaluator's, a blob reference
    files = work["files"] if "files" in work else orjson.loads(blobs.get(work["blob"])) if work.get("blob") else []
    counts = {"scanned": 0, "skipped": 0, "failed": 0, "unchanged": 0}
    why: Counter[tuple[str, str]] = Counter()  # (status, reason) of the files not scanned
    deadline = work.get("deadline")
    timed_out = False
    by_detector: dict[str, int] = {}
    engine = Engine(selected_detectors(work.get("detectors"), work.get("custom_detectors") or ()),
                    allow=frozenset(work.get("allowlist") or ()))
    limits = Limits()
    cap = work.get("max_findings_per_file")  # per file and detector: the rest are counted, not reported
    connectors = _Connectors(work, message["workspaceid"], settings)
    ahead = _ReadAhead(connectors, limits, groups(files))
    reviewer = Reviewer.for_work(work, settings)  # LLM Assist: None unless the scan asked for it
    publisher.publish(topics.scan_events, _progress(message, 0, len(files)))
    last = time.monotonic()
    try:
        for first, group in ahead:
            if should_stop():
                log.info("chunk %s stopped after %d files: its scan was cancelled", work["unit_id"], first)
                publisher.flush()
                return
            if not timed_out and deadline and iso(datetime.now(UTC)) >= deadline:
                log.warning("chunk %s: the scan's timeout passed; the %d files left are skipped", work["unit_id"],
                            len(files) - first)
                timed_out = True
                ahead.stop()
            if timed_out:
                outcomes = [("skipped", TIMEOUT, 0, [])] * len(group)
            else:
                scanned = iter(scan_group(connectors, [f for f in group if not f.get("unchanged")], engine, limits,
                                          ahead.results()))
                outcomes = [("skipped", UNCHANGED, 0, []) if f.get("unchanged") else next(scanned) for f in group]
            kept = [_capped(file, findings, cap) for file, (_, _, _, findings) in zip(group, outcomes, strict=True)]
            outcomes = [(status, reason, size, [f for _, f in mine])
                        for (status, reason, size, _), (mine, _) in zip(outcomes, kept, strict=True)]
            verdicts = reviewer.review(group, outcomes, finding_id) if reviewer else {}  # before publishing
            now = utcnow()  # one timestamp per group: the clock costs ~5 µs an event at this rate
            for i, (file, (status, reason, size, _), (mine, occurrences)) in enumerate(
                    zip(group, outcomes, kept, strict=True), start=first):
                for fid, f in mine:
                    by_detector[f.detector] = by_detector.get(f.detector, 0) + 1
                    publisher.publish(topics.findings, _finding(message, fid, file, f, verdicts.get(fid),
                                                                reviewer and reviewer.model, now))
                counts[status] += 1
                counts["unchanged"] += reason == UNCHANGED
                if status != "scanned" and reason != UNCHANGED:
                    why[status, reason or "unknown"] += 1
                publisher.publish(topics.scan_events, _event(message, c.FILE_OUTCOME, outcome_data(
                    work, file, work.get("start_index", 0) + i, status, reason, size, len(mine), occurrences), now))
            done = first + len(group)
            if time.monotonic() - last >= PROGRESS_EVERY_S or done == len(files):
                publisher.publish(topics.scan_events, _progress(message, done, len(files)))
                last = time.monotonic()
    finally:
        ahead.close()  # no read is left using a connector
        connectors.close()
        if reviewer:
            reviewer.close()
    if why:  # one line per chunk: what an operator needs to tell a data problem from a setup problem
        log.warning("chunk %s: %d of %d files not scanned: %s", work["unit_id"], sum(why.values()), len(files),
                    ", ".join(f"{n} {status} ({reason})" for (status, reason), n in sorted(why.items())))
    publisher.flush()  # the findings and outcomes are on the ledger before the result that counts them
    publisher.publish(topics.scan_events, _event(message, c.UNIT_COMPLETED, c.UnitCompleted(
        scan_id=work["scan_id"], unit_id=work["unit_id"], attempt=attempt, record_count=counts["scanned"],
        rules_done=len(files), violations_by_rule=by_detector, violations_by_severity={}, files=counts,
    ).model_dump(exclude_unset=True)))
    publisher.flush()


def _capped(file: dict, findings: list[Finding], cap: int | None) -> tuple[list[tuple[str, Finding]], int]:
    """The findings reported, (id, finding), at most `cap` per detector in the order found; and how many
    distinct values were found in all (the file's occurrences)."""
    kept, seen, per_detector = [], set(), Counter()
    for f in findings:
        fid = finding_id(file["connector_id"], file["name"], f)
        if fid in seen:
            continue
        seen.add(fid)
        per_detector[f.detector] += 1
        if cap is None or per_detector[f.detector] <= cap:
            kept.append((fid, f))
    return kept, len(seen)


def _progress(cause: dict, done: int, total: int) -> dict:
    work = cause["data"]
    attempt = work.get("attempt", 0)
    data = c.UnitProgressed(scan_id=work["scan_id"], unit_id=work["unit_id"], rules_done=done, rules_total=total,
                            attempt=attempt).model_dump(exclude_unset=True)
    return _event(cause, c.UNIT_PROGRESSED, data)


def _finding(cause: dict, fid: str, file: dict, f: Finding, verdict: Verdict | None = None,
             model: str | None = None, time: str | None = None) -> dict:
    """A finding's event. Its data is c.FindingDetected(...).model_dump() built as a plain dict (one event per
    finding: the model cost ~25 µs each; a unit test holds the two equal, key order included)."""
    work = cause["data"]
    if verdict is None:  # LLM Assist's second opinion (services.domain.llm_review), or none
        confidence, llm_verdict, llm_confidence, llm_model, detector_confidence = (
            float(f.confidence), None, None, None, None)
    else:
        confidence = float(adjusted_confidence(f.confidence, verdict))
        llm_verdict, detector_confidence = verdict.verdict, float(f.confidence)
        llm_confidence = None if verdict.llm_confidence is None else float(verdict.llm_confidence)
        llm_model = model if llm_confidence is not None else None
    data = {"finding_id": fid, "scan_id": work["scan_id"], "unit_id": work["unit_id"],
            "connector_id": file["connector_id"], "file": file["name"], "row": f.row, "column": f.column,
            "line": f.line, "start": f.start, "end": f.end, "detector": f.detector, "family": f.family,
            "confidence": confidence, "masked": f.masked, "llm_verdict": llm_verdict,
            "llm_confidence": llm_confidence, "llm_model": llm_model, "detector_confidence": detector_confidence}
    return _event(cause, c.FINDING_DETECTED, data, time)
