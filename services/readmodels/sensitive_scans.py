"""Sensitive-data scans (seed 004): the scan's request and enumeration, its chunks, every file's
outcome and the findings.

rm_sensitive_scans holds what the lifecycle's rm_scans does not (connectors, options, the
enumeration); rm_sensitive_chunks each chunk's place in the enumeration (its status and
times are rm_units'); rm_sensitive_files one row per file outcome and rm_sensitive_findings
one per finding. Files and findings are idempotent on their primary keys (a file of a scan,
a finding id of a scan), so a retried chunk or a replay never counts one twice; the coverage
counters are counts over them (api/sensitive/queries.py).

A cancel settles: a file outcome that comes after its scan's scan.aborted (the same partition,
so the order is the log's, live and in a replay) is recorded in rm_sensitive_late_files and not
counted, and so are that file's findings (rm_sensitive_late_findings), whichever of the two
topics delivered them first. A resume counts them after all (the scan goes on). The result is
the same in any interleaving of the findings and scan-events topics.
"""
from __future__ import annotations

import re
from operator import itemgetter

from services.domain import contracts as c
from services.readmodels.record import Record, to_json

TABLES = ("rm_sensitive_scans", "rm_sensitive_chunks", "rm_sensitive_offers", "rm_sensitive_files",
          "rm_sensitive_findings", "rm_sensitive_late_files", "rm_sensitive_late_findings")
FILE_COLUMNS = "scan_id, connector_id, name, unit_id, idx, status, reason, size, version, findings, at, occurrences"
FINDING_COLUMNS = ("scan_id, finding_id, connector_id, file, row, col, line, start, end_, detector, family, confidence,"
                   " masked, found_at, llm_verdict, llm_confidence, llm_model, detector_confidence")


def scan_requested(conn, rec: Record) -> None:
    d = rec.event["data"]
    if d.get("kind") != "sensitive":
        return
    opts = d["options"]
    conn.execute(
        "INSERT INTO rm_sensitive_scans (scan_id, workspace_id, type, connectors, options, coverage_target,"
        " coverage_strategy, workers_requested, created_at)"
        " VALUES (:scan_id, :workspace_id, :type, :connectors, :options, :coverage_target, :coverage_strategy,"
        " :workers_requested, :created_at) ON CONFLICT(scan_id) DO NOTHING",
        {"scan_id": d["scan_id"], "workspace_id": d["workspace_id"], "type": d.get("type", "full"),
         "connectors": to_json([s["id"] for s in d["connectors"]]), "options": to_json(opts),
         "coverage_target": opts.get("coverage_target", 1.0),
         "coverage_strategy": opts.get("coverage_strategy", "best_effort"),
         "workers_requested": opts["max_workers"], "created_at": d["requested_at"]})


def scan_enumerated(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.execute(
        "UPDATE rm_sensitive_scans SET enumeration_status = :status, total_enumerated = :total_enumerated,"
        " listings = :listings, workers_requested = :workers_requested WHERE scan_id = :scan_id",
        {**d, "listings": to_json(d["connectors"])})


def scan_started(conn, rec: Record) -> None:
    d = rec.event["data"]
    conn.executemany(
        "INSERT INTO rm_sensitive_chunks (unit_id, scan_id, idx, start_index, end_index, file_count)"
        " VALUES (:unit_id, :scan_id, :idx, :start_index, :end_index, :file_count) ON CONFLICT(unit_id) DO NOTHING",
        [{"unit_id": u["unit_id"], "scan_id": d["scan_id"], "idx": u["index"], "start_index": u["start_index"],
          "end_index": u["end_index"], "file_count": u["record_count"]}
         for u in d["units"] if u.get("start_index") is not None])


def chunk_offered(conn, rec: Record) -> None:
    """A BYOC scan's chunk, waiting for an external worker to claim it (api/sensitive/byoc_routes.py): the
    latest offer (a resume offers again with the next attempt) with its work, files by reference."""
    d = rec.event["data"]
    conn.execute(
        "INSERT INTO rm_sensitive_offers (unit_id, scan_id, idx, attempt, work) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(unit_id) DO UPDATE SET attempt = excluded.attempt, work = excluded.work"
        " WHERE excluded.attempt >= rm_sensitive_offers.attempt",
        (d["unit_id"], d["scan_id"], d["index"], d.get("attempt", 0), to_json(rec.event)))


_INSERT_FILE = (f"INSERT INTO {{table}} ({FILE_COLUMNS}) VALUES (:scan_id, :connector_id, :name, :unit_id, :index,"
                " :status, :reason, :size, :version, :findings, :at, :occurrences)"
                " ON CONFLICT(scan_id, connector_id, name) DO NOTHING")
_INSERT_FINDING = (f"INSERT INTO {{table}} ({FINDING_COLUMNS}) VALUES (:scan_id, :finding_id, :connector_id, :file,"
                   " :row, :column, :line, :start, :end, :detector, :family, :confidence, :masked, :found_at,"
                   " :llm_verdict, :llm_confidence, :llm_model, :detector_confidence)"
                   " ON CONFLICT(scan_id, finding_id) DO NOTHING")
_FILE = "scan_id = :scan_id AND connector_id = :connector_id AND {name} = :name"


def _has(conn, table: str, d: dict, name: str = "name") -> bool:
    return conn.execute(f"SELECT 1 FROM {table} WHERE {_FILE.format(name=name)}", d).fetchone() is not None


def file_outcome(conn, rec: Record) -> None:
    d = {"occurrences": None, **rec.event["data"], "at": rec.event["time"]}
    cancelled = conn.execute("SELECT cancelled_at FROM rm_sensitive_scans WHERE scan_id = ?", (d["scan_id"],)
                             ).fetchone()
    late = cancelled is not None and cancelled[0] is not None and not _has(conn, "rm_sensitive_files", d)
    conn.execute(_INSERT_FILE.format(table="rm_sensitive_late_files" if late else "rm_sensitive_files"), d)
    if late:  # its findings that came first are not counted either
        _move_findings(conn, "rm_sensitive_findings", "rm_sensitive_late_findings", _FILE.format(name="file"), d)


def finding_detected(conn, rec: Record) -> None:
    d = {"llm_verdict": None, "llm_confidence": None, "llm_model": None, "detector_confidence": None,
         **rec.event["data"], "found_at": rec.event["time"]}
    d["name"] = d["file"]
    late = _has(conn, "rm_sensitive_late_files", d) and not _has(conn, "rm_sensitive_files", d)
    conn.execute(_INSERT_FINDING.format(table="rm_sensitive_late_findings" if late else "rm_sensitive_findings"), d)


# The bulk of a sensitive scan's ledger: applied a batch at a time (services.readmodels.apply), a scan's
# as it would be one by one, when none of them can be late: its scan was not cancelled before the batch
# (so nothing of it waits in the late tables either: a resume empties them) and is neither aborted nor
# resumed within it. One statement per table instead of three or four per record, which a database
# over the network (PostgreSQL) pays for in round trips.
BULK = frozenset({c.FILE_OUTCOME, c.FINDING_DETECTED})


def bulk_scans(conn, records: list[Record]) -> set[str]:
    """The scans whose file outcomes and findings in this batch may be applied in bulk."""
    scans = {rec.event["data"]["scan_id"] for rec in records if rec.type in BULK}
    moved = {rec.event["data"]["scan_id"] for rec in records if rec.type in (c.SCAN_ABORTED, c.SCAN_RESUMED)}
    cancelled = {scan_id for scan_id in sorted(scans - moved)
                 if (row := conn.execute("SELECT cancelled_at FROM rm_sensitive_scans WHERE scan_id = ?",
                                         (scan_id,)).fetchone()) is not None and row[0] is not None}
    return scans - moved - cancelled


def _positional(named: str) -> tuple[str, itemgetter]:
    """An INSERT of named parameters bound by position instead, with the getter of a row's values: many
    rows of it are one COPY on PostgreSQL (services.adapters.pg), not a statement each."""
    return re.sub(r":(\w+)", "?", named), itemgetter(*re.findall(r":(\w+)", named))


_BULK_FILE, _FILE_ROW = _positional(_INSERT_FILE.format(table="rm_sensitive_files"))
_BULK_FINDING, _FINDING_ROW = _positional(_INSERT_FINDING.format(table="rm_sensitive_findings"))


def outcomes_and_findings(conn, recs: list[Record]) -> None:
    """What file_outcome and finding_detected do, for records of bulk_scans, in their order."""
    files = [_FILE_ROW({"occurrences": None, **rec.event["data"], "at": rec.event["time"]})
             for rec in recs if rec.type == c.FILE_OUTCOME]
    findings = [_FINDING_ROW({"llm_verdict": None, "llm_confidence": None, "llm_model": None,
                              "detector_confidence": None, **rec.event["data"], "found_at": rec.event["time"]})
                for rec in recs if rec.type == c.FINDING_DETECTED]
    if files:
        conn.executemany(_BULK_FILE, files)
    if findings:
        conn.executemany(_BULK_FINDING, findings)


def _move_findings(conn, source: str, target: str, where: str, args: dict) -> None:
    conn.execute(f"INSERT INTO {target} ({FINDING_COLUMNS}) SELECT {FINDING_COLUMNS} FROM {source} WHERE {where}"
                 " ON CONFLICT(scan_id, finding_id) DO NOTHING", args)
    conn.execute(f"DELETE FROM {source} WHERE {where}", args)


def scan_aborted(conn, rec: Record) -> None:
    conn.execute("UPDATE rm_sensitive_scans SET cancelled_at = :aborted_at WHERE scan_id = :scan_id",
                 rec.event["data"])


def scan_resumed(conn, rec: Record) -> None:
    """The scan goes on: what its chunks reported after the cancel counts after all."""
    d = rec.event["data"]
    conn.execute("UPDATE rm_sensitive_scans SET cancelled_at = NULL WHERE scan_id = :scan_id", d)
    conn.execute(f"INSERT INTO rm_sensitive_files ({FILE_COLUMNS}) SELECT {FILE_COLUMNS} FROM rm_sensitive_late_files"
                 " WHERE scan_id = :scan_id ON CONFLICT(scan_id, connector_id, name) DO NOTHING", d)
    conn.execute("DELETE FROM rm_sensitive_late_files WHERE scan_id = :scan_id", d)
    _move_findings(conn, "rm_sensitive_late_findings", "rm_sensitive_findings", "scan_id = :scan_id", d)


HANDLERS = {
    c.SCAN_REQUESTED: scan_requested,
    c.SCAN_ENUMERATED: scan_enumerated,
    c.SCAN_STARTED: scan_started,
    c.CHUNK_OFFERED: chunk_offered,
    c.FILE_OUTCOME: file_outcome,
    c.FINDING_DETECTED: finding_detected,  # self-idempotent: its (scan, finding id) is the primary key
    c.SCAN_ABORTED: scan_aborted,
    c.SCAN_RESUMED: scan_resumed,
}
