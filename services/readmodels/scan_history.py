"""rm_scan_history: the ledger of each scan, event by event, for GET /api/scans/{id}/history.

Every command and scan event of a scan (its RunScan, aborts, resumes, deletes and violation
status changes; its lifecycle, unit and chunk results, file outcomes, BYOC reports), with where
it is on the log and who caused it: the token id and role a command or a BYOC report carries
(services.domain.envelope.with_actor), or the `source` of what the system decided. Violations
and findings are not repeated here: they have their own lists, and a unit's result counts them.

In log order: by the record's timestamp on the log (the broker's append time on the commands topic,
the producer's on the others: a command is on the log before the coordinator reads it, and so
before what it decided), then topic and offset. An event's own `time` is the domain's (a scan's
request time is its snapshot's, taken before its command was written) and would not do.

A rerun's RunScan is in the history of the scan it reruns too, so that history says what became
of it. A row is keyed by (scan, event id): an event the log holds twice (re-emitted after a crash)
is shown once, at its first position, the same for the live projector and replay.
"""
from __future__ import annotations

import re
from operator import itemgetter

from services.domain import contracts as c
from services.domain.envelope import ACTOR_ID, ACTOR_ROLE, WORKER_ID
from services.readmodels.record import Record, to_json

TABLES = ("rm_scan_history",)

INSERT = ("INSERT INTO rm_scan_history (scan_id, event_id, workspace_id, logged_at, topic, partition, \"offset\", type,"
          " time, source, actor_id, actor_role, worker_id, event)"
          " VALUES (:scan_id, :event_id, :workspace_id, :logged_at, :topic, :partition, :offset, :type, :time,"
          " :source, :actor_id, :actor_role, :worker_id, :event) ON CONFLICT(scan_id, event_id) DO NOTHING")


def _row(rec: Record, scan_id: str) -> dict:
    e = rec.event
    return {"scan_id": scan_id, "event_id": e["id"], "workspace_id": e.get("workspaceid") or "",
            "logged_at": rec.timestamp or 0, "topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
            "type": rec.type, "time": e["time"], "source": e.get("source") or "", "actor_id": e.get(ACTOR_ID),
            "actor_role": e.get(ACTOR_ROLE), "worker_id": e.get(WORKER_ID), "event": to_json(e)}


def _insert(conn, rec: Record, scan_id: str) -> None:
    conn.execute(INSERT, _row(rec, scan_id))


# by position: many rows are one COPY on PostgreSQL (services.adapters.pg)
_BULK, _BULK_ROW = re.sub(r":(\w+)", "?", INSERT), itemgetter(*re.findall(r":(\w+)", INSERT))


def record_many(conn, recs: list[Record]) -> None:
    """What `recorded` does, for many records at once (services.readmodels.apply's bulk path)."""
    if recs:
        conn.executemany(_BULK, [_BULK_ROW(_row(rec, rec.event["subject"])) for rec in recs])


def recorded(conn, rec: Record) -> None:
    _insert(conn, rec, rec.event["subject"])


def run_scan(conn, rec: Record) -> None:
    _insert(conn, rec, rec.event["subject"])
    if rerun_of := rec.event["data"].get("rerun_of"):
        _insert(conn, rec, rerun_of)


# Everything on the commands and scan-events topics; not the high-volume violations and findings, nor
# config changes (no scan's: a scan names the versions it ran with in its RunScan).
HANDLERS = {type_: recorded for type_ in c.MODELS if type_ not in (c.VIOLATION_DETECTED, c.FINDING_DETECTED,
                                                                      c.WORK_UNIT, c.CONFIG_CHANGED)}
HANDLERS[c.RUN_SCAN] = run_scan  # self-idempotent (apply.SELF_IDEMPOTENT): the primary key makes it so
