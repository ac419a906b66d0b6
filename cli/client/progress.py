"""A scan of any kind, read and followed until it is final: a bar on a terminal, plain lines otherwise,
then its summary and the exit code its result and the thresholds give."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from cli.client.api import Api, ClientError, error_message
from cli.client.codes import EXIT_FAILED, EXIT_OK, EXIT_THRESHOLD, POLL_S, SEVERITIES


@dataclass
class Seen:
    """One reading of a scan: where it is, what it found so far, and whether that is its end."""

    kind: str  # compliance | monitor | sensitive
    scan_id: str
    status: str
    done: int
    total: int
    unit: str  # rules, monitors, files
    found: int  # violations or findings
    message: str | None
    raw: dict

    @property
    def final(self) -> bool:
        return self.status in ("completed", "failed", "aborted", "partial", "cancelled")

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    @property
    def found_what(self) -> str:
        return "findings" if self.kind == "sensitive" else "violations"

    @property
    def found_so_far(self) -> str:
        """A compliance or monitor scan counts its violations once it is final (seed 001 shows 0 until then)."""
        if self.final or self.kind == "sensitive":
            return f"{self.found} {self.found_what}"
        return f"{self.found_what} counted at the end"

    def line(self) -> str:
        progress = f"{self.done}/{self.total} {self.unit}" if self.total else "not started"
        return f"{self.kind} scan {self.scan_id}: {self.status}, {progress}, {self.found_so_far}"


def _compliance_seen(body: dict, kind: str) -> Seen:
    return Seen(kind, body["id"], body["status"], body.get("rules_processed") or 0, body.get("rules_total") or 0,
                "rules" if kind == "compliance" else "monitors", body.get("violation_count") or 0,
                body.get("error"), body)


def _sensitive_seen(body: dict) -> Seen:
    p = body.get("progress") or {}
    return Seen("sensitive", body["scan_id"], body["status"], p.get("files_processed") or 0,
                p.get("files_total") or 0, "files", p.get("findings_count") or 0,
                body.get("message") or body.get("error"), body)


def read_scan(api: Api, scan_id: str, kind: str | None = None, patience_s: float = 0) -> Seen:
    """A scan by its id, whichever its kind: /api/scan/{id} (compliance and monitor scans), else
    /api/v1/scans/{id} (sensitive-data scans, `scan-…`)."""
    if kind != "sensitive" and not (kind is None and scan_id.startswith("scan-")):
        r = api.call("GET", f"/api/scan/{scan_id}", ok=(200, 404), patience_s=patience_s)
        if r.status_code == 200:
            body = r.json()
            return _compliance_seen(body, kind or ("monitor" if body.get("policy_id") is None else "compliance"))
        if kind is not None:
            raise ClientError(f"no scan {scan_id}: {error_message(r)}")
    return _sensitive_seen(api.json("GET", f"/api/v1/scans/{scan_id}", patience_s=patience_s)["data"])


@dataclass
class Thresholds:
    max_found: int | None  # fail when more than this many violations/findings
    severity: str | None  # fail on any violation of this severity or worse

    def exceeded(self, api: Api, seen: Seen) -> list[str]:
        why = []
        if self.max_found is not None and seen.found > self.max_found:
            why.append(f"{seen.found} {seen.found_what} > --fail-on-violations {self.max_found}")
        if self.severity is not None and seen.kind != "sensitive":
            worse = SEVERITIES[SEVERITIES.index(self.severity):]
            counts = {s: api.json("GET", f"/api/scan/{seen.scan_id}/violations",
                                  params={"severity": s, "size": 1})["total"] for s in worse}
            if sum(counts.values()):
                shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                why.append(f"violations of severity {self.severity} or worse: {shown}")
        return why


def _plain_progress(seen_iter, out):
    """One line per change of status or progress: what a CI log or a file gets (no escape codes)."""
    last = None
    for seen in seen_iter:
        line = seen.line()
        if line != last:
            print(line, file=out, flush=True)
            last = line
        yield seen


def _bar_progress(seen_iter):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[found]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = None
        for seen in seen_iter:
            fields = {"unit": seen.unit, "found": seen.found_so_far}
            description = f"{seen.kind} scan {seen.scan_id} {seen.status}"
            if task is None:
                task = bar.add_task(description, total=seen.total or None, completed=seen.done, **fields)
            else:
                bar.update(task, description=description, total=seen.total or None, completed=seen.done, **fields)
            yield seen


FOLLOW_PATIENCE_S = 60  # a follower rides out an API restart or a broker outage's 503s this long


def _readings(api: Api, scan_id: str, kind: str | None):
    first = True
    while True:
        seen = read_scan(api, scan_id, kind, patience_s=0 if first else FOLLOW_PATIENCE_S)
        first = False
        yield seen
        if seen.final:
            return
        time.sleep(POLL_S)


def follow(api: Api, scan_id: str, kind: str | None, thresholds: Thresholds) -> int:
    """Follow a scan until it is final, with a bar on a terminal (plain lines otherwise, on stderr),
    then its summary on stdout; the exit code says how it ended."""
    readings = _readings(api, scan_id, kind)
    shown = _bar_progress(readings) if sys.stderr.isatty() else _plain_progress(readings, sys.stderr)
    seen = None
    try:
        for reading in shown:
            seen = reading
    except KeyboardInterrupt:
        print(f"stopped following scan {scan_id}; it goes on (scanledger scan follow {scan_id})", file=sys.stderr)
        return 130
    assert seen is not None
    print(summary(seen))
    if not seen.succeeded:
        print(f"scanledger: scan {seen.scan_id} {seen.status}" + (f": {seen.message}" if seen.message else ""),
              file=sys.stderr)
        return EXIT_FAILED
    why = thresholds.exceeded(api, seen)
    if why:
        print(f"scanledger: scan {seen.scan_id} over the threshold: {'; '.join(why)}", file=sys.stderr)
        return EXIT_THRESHOLD
    return EXIT_OK


def summary(seen: Seen) -> str:
    extra = ""
    if seen.kind == "compliance" and seen.succeeded:
        extra = f", compliance score {seen.raw.get('compliance_score')}, {seen.raw.get('record_count')} records"
    elif seen.kind == "sensitive":
        cov = seen.raw.get("coverage") or {}
        extra = "".join(f", {k.replace('_', ' ')} {cov[k]}" for k in ("total_scanned",) if k in cov)
    return (f"{seen.kind} scan {seen.scan_id} {seen.status}: {seen.found} {seen.found_what}, "
            f"{seen.done}/{seen.total} {seen.unit}{extra}")
