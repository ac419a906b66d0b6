"""Every query the API runs over the read models, against the one schema (services.stores.read_models).

The projector writes the tables and the API reads them; nothing but this test ties the API's
SQL to the columns the schema declares. The database is `:memory:` SQLite with the schema,
filled by projecting the test ledgers (tests/unit/ledger.py: two compliance scans, monitor
scans and syncs) plus one RunScan not yet taken up, so the reads return rows and their
columns are read by name as the views read them.

EXERCISES has an entry per function of api.scans.reads and api.operations.queries that takes the
database: a new query without one fails test_every_query_function_is_exercised.
"""
from __future__ import annotations

import inspect
import itertools
import sqlite3

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.audit import queries as audit
from api.metrics import read_model_families
from api.operations import queries as oq
from api.scans import reads
from services.adapters.db import transaction
from services.domain import contracts as c
from services.domain.envelope import make_event
from services.readmodels.apply import apply_batch
from services.readmodels.record import Record
from services.stores import read_models
from tests.unit.ledger import COMMANDS, WORKSPACE, asset_runs, two_scans

OTHER = "another-workspace"


@pytest.fixture(scope="module")
def db():
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    read_models.create(conn)
    for ledger in (two_scans(), asset_runs()):
        with transaction(conn):
            apply_batch(conn, ledger.written)
    pending = {"scan_id": "s3", "operation_id": 3, "kind": "compliance", "workspace_id": WORKSPACE,
               "requested_by": "analyst", "requested_at": "2024-03-02T00:00:00.000Z",
               "policy": {"id": "p1", "name": "Policy", "rules": []},
               "upload": {"id": "up", "blob": "b", "record_count": 0, "columns": []},
               "mapping": {"id": "m1", "mapping": {}}}
    run_scan = make_event(c.RUN_SCAN, "s3", pending, id="cmd-s3", source="api", workspace_id=WORKSPACE)
    with transaction(conn):
        apply_batch(conn, [Record(COMMANDS, 9, 0, c.RUN_SCAN, run_scan)])
    yield conn
    conn.close()


def violation_ids(db, scan_id: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT violation_id FROM rm_violations WHERE scan_id = ? ORDER BY 1", (scan_id,))]


def unit_ids(db) -> list[str]:
    return [r[0] for r in db.execute("SELECT unit_id FROM rm_units ORDER BY 1")]


# --- api.scans.reads -------------------------------------------------------------------------------------

def exercise_scan(db):
    assert reads.scan(db, WORKSPACE, "s2")["status"] == "completed"
    assert reads.scan(db, OTHER, "s2") is None  # scoped to the workspace
    assert reads.scan(db, WORKSPACE, "s3") is None  # not projected yet


def exercise_pending_request(db):
    assert reads.pending_request(db, WORKSPACE, "s3")["request"]["scan_id"] == "s3"
    assert reads.pending_request(db, WORKSPACE, "s1") is None  # taken up
    assert reads.pending_request(db, OTHER, "s3") is None


def exercise_pending_operation(db):
    assert reads.pending_operation(db, WORKSPACE, 3)["scan_id"] == "s3"
    assert reads.pending_operation(db, WORKSPACE, 2) is None


def exercise_scan_or_pending(db):
    row, pending = reads.scan_or_pending(db, WORKSPACE, "s1")
    assert row["scan_id"] == "s1" and pending is None
    row, pending = reads.scan_or_pending(db, WORKSPACE, "s3")
    assert row is None and pending["kind"] == "compliance"
    assert reads.scan_or_pending(db, WORKSPACE, "nope") == (None, None)


def exercise_is_known(db):
    assert reads.is_known(db, "s3") and reads.is_known(db, "s2") and not reads.is_known(db, "nope")


def exercise_score_history(db):
    history = reads.score_history(db, "s1")
    assert [h["action"] for h in history] == [
        "scan_completed", "violation_dismissed", "violation_resolved", "violation_reopened"]
    assert set(history[0]) == {"score", "timestamp", "action", "violation_id"}


def violations_page(db, *args) -> dict:
    """reads.violations_page as a client reads it (its items may be JSON text: orjson.Fragment)."""
    return orjson.loads(orjson.dumps(reads.violations_page(db, *args)))


def exercise_violations_page(db):
    total = len(violation_ids(db, "s1"))
    for page, size, rule_id, status, severity in itertools.product(
            (1, 2), (1, 100), (None, "r1", "r9"), (None, "open", "resolved", "dismissed"), (None, "high", "low")):
        out = violations_page(db, "s1", page, size, rule_id, status, severity)
        assert out["total"] <= total and len(out["items"]) <= size
        if (page, size) == (1, 100):  # every match on one page: the total counts exactly those
            assert out["total"] == len(out["items"]), (rule_id, status, severity)
            assert all(i["status"] == status for i in out["items"]) if status else True
    out = violations_page(db, "s1", 1, 100, None, None, None)
    assert out["total"] == total == len(out["items"]) and out["pages"] == 1
    assert {i["status"] for i in out["items"]} == {"open", "resolved"}  # status overrides joined in
    # a page at a time walks the order one page holds (on SQLite, pages are found in the index alone)
    assert [violations_page(db, "s1", p, 1, None, None, None)["items"][0]["id"]
            for p in range(1, total + 1)] == [i["id"] for i in out["items"]]
    assert set(out["items"][0]) == {"id", "scan_id", "rule_id", "rule_name", "rule_type", "severity", "account",
                                    "record_index", "record_key", "value", "window", "signature", "status",
                                    "detected_at", "record", "observed"}


# Values as the projector may store them: any text (NUL, controls, surrogate-free Unicode), numbers at
# SQLite's limits, and record/observed as JSON objects with nested arrays, or none (NULL, '', 'null').
_text = st.one_of(st.none(), st.text(max_size=20))
_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1),
                               st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10)),
                     lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner,
                                                                                           max_size=3)),
                     max_leaves=8)
_object = st.one_of(st.sampled_from([None, "", "null", "{}"]),
                    st.dictionaries(st.text(max_size=8), _json, max_size=4).map(lambda d: orjson.dumps(d).decode()))
_violation = st.tuples(st.text(max_size=4), _text, _text, st.sampled_from(["high", "low"]), _text,
                       st.one_of(st.none(), st.integers(-(2 ** 63), 2 ** 63 - 1)), st.text(max_size=6), _text, _text,
                       st.text(max_size=6), _object, _object, st.sampled_from([None, "open", "dismissed"]))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(_violation, max_size=12))
def test_a_page_built_as_json_by_sqlite_reads_as_the_rows_viewed_in_python(rows):
    """VIOLATION_JSON (SQLite's json_object) says what violation_view of the same row says, field for field."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    read_models.create(conn)
    for i, (rule, name, type_, severity, account, index, key, value, window, signature, record, observed,
            status) in enumerate(rows):
        conn.execute("INSERT INTO rm_violations (violation_id, scan_id, rule_id, rule_name, rule_type, severity,"
                     " account, record_index, record_key, value, \"window\", signature, detected_at, record, observed)"
                     " VALUES (?, 's', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2024-01-01T00:00:00.000Z', ?, ?)",
                     (f"v{i}", rule, name, type_, severity, account, index, key, value, window, signature, record,
                      observed))
        if status:
            conn.execute("INSERT INTO rm_violation_status VALUES (?, 's', ?, 'now', 'me')", (f"v{i}", status))
    viewed = [reads.violation_view(dict(r)) for r in conn.execute(
        f"SELECT {reads.VIOLATION_COLUMNS} FROM rm_violations v LEFT JOIN rm_violation_status s"
        " ON s.violation_id = v.violation_id ORDER BY v.rule_id, v.record_index, v.record_key, v.rowid")]
    assert violations_page(conn, "s", 1, 100, None, None, None)["items"] == viewed


def exercise_violation(db):
    vid = violation_ids(db, "s2")[0]
    row = reads.violation(db, WORKSPACE, vid)
    assert row["id"] == vid and row["finalized"] == 1 and row["scan_status"] == "completed"
    assert reads.violation(db, OTHER, vid) is None


def exercise_asset_profile(db):
    profile = reads.asset_profile(db, 1)
    assert profile["row_count"] == 130 and reads.loads(profile["columns"])[0]["name"] == "id"  # sync2's
    assert reads.asset_profile(db, 99) is None


def exercise_asset_runs(db):
    current, last = reads.asset_runs(db, [1, 2, 99])
    assert current == {}  # every run has finished
    assert {asset: unit["scan_id"] for asset, unit in last.items()} == {1: "mon2", 2: "mon2"}
    assert last[1]["scan_started_at"] is not None
    assert reads.asset_runs(db, []) == ({}, {})


def exercise_unit_monitors(db):
    monitors = reads.unit_monitors(db, unit_ids(db))
    assert set(monitors) == {"mon1.u0", "mon1.u1", "mon2.u0", "mon2.u1"}
    assert [(m["monitor_name"], m["stage"], m["anomalies"]) for m in monitors["mon2.u0"]] == [
        ("Row count", "completed", 1), ("Freshness", "failed", 0)]
    assert reads.unit_monitors(db, []) == {}


# --- api.operations.queries --------------------------------------------------------------------------

OPERATION_FILTERS = [
    {}, {"id": "2"}, {"id": "1"}, {"schedule_id": "5"}, {"finished": "true"}, {"finished": "false"},
    *({"operation_type": t} for t in ("catalog", "profile", "scan", "external_scan", "export", "materialize",
                                       "promote")),
    {"result": ["queued", "running", "success", "failure", "aborted"]}, {"result": ["success"]},
    {"created_date": "2024-03-01", "offset": "-60"}, {"start_date": "2024-03-01"}, {"end_date": "2024-03-01"},
    {"datastore": ["7"]}, {"datastore": ["7", "8"]}, {"container": ["1", "2"]},
    {"has_logs": "true"}, {"has_logs": "false"},
    {"sort_created": "asc"}, {"sort_created": "desc", "sort_duration": "asc"}, {"sort_duration": "desc"},
    {"page": "2", "size": "1"},
    {"operation_type": "scan", "finished": "true", "result": ["success", "failure"], "datastore": ["7"],
     "container": ["1"], "has_logs": "false", "created_date": "2024-03-01", "start_date": "2024-03-01",
     "end_date": "2024-03-01", "offset": "90", "sort_created": "asc", "sort_duration": "desc", "page": "1",
     "size": "10"},
]


def exercise_operations_page(db):
    for raw in OPERATION_FILTERS:
        q = oq.OperationsQuery.model_validate(raw)
        rows, total = oq.operations_page(db, WORKSPACE, q)
        assert len(rows) <= total
        for row in rows:
            assert row["shown_status"] and row["units_done"] >= 0
    rows, total = oq.operations_page(db, WORKSPACE, oq.OperationsQuery())
    # s1 is deleted; s3, only a pending request, is listed as its request (queued, pending_request)
    assert [r["operation_id"] for r in rows] == [14, 13, 12, 11, 3, 2] and total == 6
    assert [r["operation_id"] for r in rows if r["pending_request"] is not None] == [3]
    assert page_ids(db, {"result": ["queued"]}) == [3]
    assert page_ids(db, {"finished": "false"}) == [3]
    assert 3 not in page_ids(db, {"finished": "true"}) and 3 not in page_ids(db, {"result": ["success"]})
    assert page_ids(db, {"id": "3"}) == [3] and page_ids(db, {"start_date": "2024-03-02"}) == []
    assert page_ids(db, {"created_date": "2024-03-02"}) == [3]
    assert page_ids(db, {"sort_duration": "asc"})[-1] == 3  # no duration: last, whichever the direction
    assert page_ids(db, {"sort_duration": "desc"})[-1] == 3
    # pages of one run each walk the projected and the pending rows alike, each run once
    assert [page_ids(db, {"page": str(n), "size": "1"}) for n in range(1, 8)] == [[14], [13], [12], [11], [3], [2], []]
    assert oq.operations_page(db, OTHER, oq.OperationsQuery()) == ([], 0)
    rows, _ = oq.operations_page(db, WORKSPACE, oq.OperationsQuery.model_validate({"operation_type": "catalog"}))
    assert [r["kind"] for r in rows] == ["catalog", "catalog"]
    # s2's failed unit was resumed (its error cleared); a failed monitor is no unit error
    assert oq.operations_page(db, WORKSPACE, oq.OperationsQuery.model_validate({"has_logs": "true"})) == ([], 0)
    assert oq.operations_page(db, WORKSPACE, oq.OperationsQuery.model_validate({"has_logs": "false"}))[1] == 6


def page_ids(db, raw: dict) -> list[int]:
    rows, total = oq.operations_page(db, WORKSPACE, oq.OperationsQuery.model_validate(raw))
    assert len(rows) <= total
    return [r["operation_id"] for r in rows]


def exercise_operation(db):
    assert oq.operation(db, WORKSPACE, 2)["units_done"] == 3
    assert oq.operation(db, WORKSPACE, 1) is None  # deleted
    assert oq.operation(db, OTHER, 2) is None


def exercise_operation_id_of(db):
    assert oq.operation_id_of(db, "s1") == 1 and oq.operation_id_of(db, "nope") is None


def exercise_units(db):
    assert [u["idx"] for u in oq.units(db, "s2")] == [0, 1, 2]
    assert oq.units(db, "nope") == []


def exercise_completed_units(db):
    assert oq.completed_units(db, "s2") == [u["unit_id"] for u in oq.units(db, "s2") if u["status"] == "completed"]
    assert oq.completed_units(db, "s2") and oq.completed_units(db, "nope") == []


def exercise_scan_id_of_run(db):
    assert audit.scan_id_of_run(db, WORKSPACE, 1) == "s1" and audit.scan_id_of_run(db, WORKSPACE, 999) is None


def exercise_has_history(db):
    assert audit.has_history(db, WORKSPACE, "s1") and not audit.has_history(db, "elsewhere", "s1")


def exercise_page(db):
    everything = audit.page(db, WORKSPACE, "s1", 1000, None, [])
    assert everything[0]["type"] == c.RUN_SCAN and len(everything) > 3
    after = [everything[1][k] for k in audit.ORDER]
    assert [r["event_id"] for r in audit.page(db, WORKSPACE, "s1", 2, after, [])] == \
        [r["event_id"] for r in everything[2:4]]
    assert {r["type"] for r in audit.page(db, WORKSPACE, "s1", 1000, None, [c.SCAN_FINISHED])} == {c.SCAN_FINISHED}
    assert audit.item_view(everything[0])["position"]["offset"] == everything[0]["offset"]


EXERCISES = {
    (reads, "scan"): exercise_scan,
    (reads, "pending_request"): exercise_pending_request,
    (reads, "pending_operation"): exercise_pending_operation,
    (reads, "scan_or_pending"): exercise_scan_or_pending,
    (reads, "is_known"): exercise_is_known,
    (reads, "score_history"): exercise_score_history,
    (reads, "violations_page"): exercise_violations_page,
    (reads, "violation"): exercise_violation,
    (reads, "asset_profile"): exercise_asset_profile,
    (reads, "asset_runs"): exercise_asset_runs,
    (reads, "unit_monitors"): exercise_unit_monitors,
    (oq, "operations_page"): exercise_operations_page,
    (oq, "operation"): exercise_operation,
    (oq, "operation_id_of"): exercise_operation_id_of,
    (oq, "units"): exercise_units,
    (oq, "completed_units"): exercise_completed_units,
    (audit, "scan_id_of_run"): exercise_scan_id_of_run,
    (audit, "has_history"): exercise_has_history,
    (audit, "page"): exercise_page,
}


def query_functions() -> set[tuple]:
    """The functions of the API's query modules that take the database (`db`) first."""
    return {(module, name) for module in (reads, oq, audit)
            for name, fn in inspect.getmembers(module, inspect.isfunction)
            if fn.__module__ == module.__name__ and next(iter(inspect.signature(fn).parameters), None) == "db"}


def test_every_query_function_is_exercised():
    assert set(EXERCISES) == query_functions()


@pytest.mark.parametrize("key", list(EXERCISES), ids=lambda key: f"{key[0].__name__.split('.')[-1]}.{key[1]}")
def test_query_runs_against_the_schema(db, key):
    EXERCISES[key](db)


def test_every_statement_prepares_on_empty_tables():
    """The same reads on a database the projector has not written yet (a fresh install)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    read_models.create(conn)
    assert reads.scan_or_pending(conn, WORKSPACE, "s1") == (None, None)
    assert reads.violations_page(conn, "s1", 1, 10, "r1", "open", "high")["total"] == 0
    assert reads.asset_runs(conn, [1]) == ({}, {})
    for raw in OPERATION_FILTERS:
        assert oq.operations_page(conn, WORKSPACE, oq.OperationsQuery.model_validate(raw)) == ([], 0)
    assert oq.operation(conn, WORKSPACE, 1) is None and oq.units(conn, "s1") == []


def test_metrics_figures_are_the_read_models_counts(db):
    """GET /metrics' aggregates (api/metrics.py) run against the schema and count what the tables hold."""
    families = {f.name: f for f in read_model_families(db)}
    scans = db.execute("SELECT COUNT(*) FROM rm_scans WHERE deleted_at IS NULL").fetchone()[0]
    assert sum(s.value for s in families["scanledger_scans"].samples) == scans > 0
    seen = db.execute("SELECT COALESCE(SUM(violations_seen), 0) FROM rm_scans WHERE deleted_at IS NULL"
                      " AND kind != 'sensitive'").fetchone()[0]
    assert sum(s.value for s in families["scanledger_violations"].samples) == seen
    finished = db.execute("SELECT COUNT(*) FROM rm_scans WHERE deleted_at IS NULL AND started_at IS NOT NULL"
                          " AND finished_at IS NOT NULL").fetchone()[0]
    counts = [s.value for s in families["scanledger_scan_duration_seconds"].samples if s.name.endswith("_count")]
    assert sum(counts) == finished
