"""A cancel settles (issue 19): a file outcome that comes after its scan's scan.aborted on the
scan-events partition is recorded, not counted, and so are that file's findings, in whatever order
the findings topic and the scan-events topic are consumed and batched; a resume counts them.

The events are the real ones: the coordinator's lifecycle and a chunk run by run_chunk over a
directory of generated files (tests/unit/test_sensitive.py's `lake`)."""
from __future__ import annotations

import random
import sqlite3

import pytest

from api.sensitive.queries import chunks, worker_status
from services.domain import contracts as c
from services.domain import lifecycle
from services.domain.envelope import make_event
from services.domain.kinds import SENSITIVE
from services.readmodels.record import Record
from services.runners.sensitive import plan_sensitive, run_chunk
from services.stores import byoc_store
from tests.unit.test_projection import ProjectionCase, batches, interleave
from tests.unit.test_sensitive import Published, command, lake, request, store  # noqa: F401 (a fixture)

SCAN_EVENTS, FINDINGS = "t.scan-events", "t.findings"
INTERLEAVINGS = 150


class Ledger:
    """The two partitions the projector reads for one scan, each in the order it was written."""

    def __init__(self):
        self.streams: dict[tuple[str, int], list[Record]] = {}

    def write(self, topic: str, event: dict) -> None:
        stream = self.streams.setdefault((topic, 0), [])
        stream.append(Record(topic, 0, len(stream), event["type"], event))


@pytest.fixture
def chunk(lake):  # noqa: F811 (the fixture imported above)
    """A one-chunk scan's coordinator events and what its chunk published, in order."""
    _corpus, connector, settings = lake
    req = {**request(max_workers=1), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    state, requested = lifecycle.request(None, command(req))
    state, started, _ = lifecycle.start(state, command(req), plan.units, "2024-03-01T10:00:01.000Z",
                                        plan.enumeration)
    [work] = SENSITIVE.work(command(req), req, plan.units)
    out = Published()
    run_chunk(work, store(settings), out, settings)
    return state, [*requested, *started], out.events


def ledger_of(state, opening, published, cut: int, resume: bool) -> tuple[Ledger, set[str], set[str]]:
    """The ledger of a scan cancelled after `cut` file outcomes (the rest come after it), resumed or not;
    and the files and findings that count."""
    ledger = Ledger()
    for event in opening:
        ledger.write(SCAN_EVENTS, event)
    outcomes = 0
    state_now = state
    aborted = False
    for _topic, event in published:
        if event["type"] == c.FILE_OUTCOME:
            if outcomes == cut and not aborted:
                abort = make_event(c.ABORT_SCAN, "scan-1", {"scan_id": "scan-1", "requested_by": "me"}, id="abort",
                                   source="t", workspace_id="w")
                state_now, events = lifecycle.abort(state_now, abort, "2024-03-01T10:00:05.000Z")
                for e in events:
                    ledger.write(SCAN_EVENTS, e)
                aborted = True
            outcomes += 1
        ledger.write(FINDINGS if event["type"] == c.FINDING_DETECTED else SCAN_EVENTS, event)
    if resume:
        resume_cmd = make_event(c.RESUME_SCAN, "scan-1", {"scan_id": "scan-1", "requested_by": "me"}, id="resume",
                                source="t", workspace_id="w")
        state_now, events, _work = lifecycle.resume(state_now, resume_cmd, "2024-03-01T10:00:09.000Z")
        for e in events:
            ledger.write(SCAN_EVENTS, e)
    files = [e["data"] for _, e in published if e["type"] == c.FILE_OUTCOME]
    counted = {f["name"] for f in (files if resume else files[:cut])}
    findings = {e["data"]["finding_id"] for _, e in published
                if e["type"] == c.FINDING_DETECTED and e["data"]["file"] in counted}
    return ledger, counted, findings


class SQLiteCase(ProjectionCase):
    """The projector's apply, batch by batch, on SQLite (tests/unit/test_projection.py)."""

    def create_connection(self):
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn


def names(conn, table: str, column: str) -> set[str]:
    return {r[0] for r in conn.execute(f"SELECT {column} FROM {table}")}


@pytest.mark.parametrize("resume", [False, True])
def test_what_comes_after_a_cancel_is_not_counted_in_any_order_until_a_resume(chunk, resume):
    case = SQLiteCase()
    state, opening, published = chunk
    every_file = {e["data"]["name"] for _, e in published if e["type"] == c.FILE_OUTCOME}
    assert len(every_file) >= 6 and any(e["type"] == c.FINDING_DETECTED for _, e in published)
    rng = random.Random(20261206)
    for cut in (0, 2, len(every_file) // 2, len(every_file) - 1):
        ledger, counted, findings = ledger_of(state, opening, published, cut, resume)
        expected = None
        for _ in range(INTERLEAVINGS // 4):
            conn = case.project(batches(interleave(ledger, rng), rng))
            assert names(conn, "rm_sensitive_files", "name") == counted, cut
            assert names(conn, "rm_sensitive_findings", "finding_id") == findings, cut
            # recorded, not lost: what came after the cancel (a resume counts it)
            assert names(conn, "rm_sensitive_late_files", "name") == (set() if resume else every_file - counted)
            if not resume:
                # the chunk's result came after the cancel too: its worker was cancelled (seed 004: "active
                # workers are terminated"), not completed with files uncounted
                byoc_store.init(conn)  # the API's query reads the BYOC leases beside the read models
                [k] = chunks(conn, "scan-1")
                status = conn.execute("SELECT status FROM rm_scans WHERE scan_id = 'scan-1'").fetchone()[0]
                assert (k["unit_status"], status) == ("completed", "aborted")
                assert worker_status(k, status) == "cancelled", cut
            rows = case.rows(conn, skip=("projector_offsets",))
            assert expected is None or rows == expected  # the same rows in every order and batching
            expected = rows
            conn.close()
