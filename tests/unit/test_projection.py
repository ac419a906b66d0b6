"""The projector's apply, in process: the rows are a function of the ledger, not of the order
the topics are consumed in, nor of how the records are cut into batches, nor of redelivery.

The events are the pure code's (tests/unit/ledger.py: services.domain.lifecycle and
services.domain.evaluation); they go through services.readmodels.apply.apply_batch as the projector feeds
it, a batch per transaction. The case is written against `create_connection()`, so another
database (PostgreSQL) subclasses it with its own connection and runs the same tests.
"""
from __future__ import annotations

import random
import sqlite3

import pytest

from services.adapters.db import transaction
from services.domain import contracts as c
from services.domain.codec import decode_checked
from services.domain.envelope import encode
from services.readmodels import apply as projection
from services.readmodels.record import Record
from services.stores import read_models
from tests.unit.ledger import COMMANDS, SCAN_EVENTS, VIOLATIONS, Ledger, asset_runs, two_scans

INTERLEAVINGS = 200


def interleave(ledger: Ledger, rng: random.Random) -> list[Record]:
    """A random merge of the ledger's partitions (each stays in order), uniform over merges."""
    pending = {key: list(stream) for key, stream in ledger.streams.items()}
    merged: list[Record] = []
    while pending:
        keys = list(pending)
        key = rng.choices(keys, weights=[len(pending[k]) for k in keys])[0]
        merged.append(pending[key].pop(0))
        if not pending[key]:
            del pending[key]
    return merged


def batches(records: list[Record], rng: random.Random) -> list[list[Record]]:
    """Cut into batches of random sizes, from one record to all of them."""
    out, start = [], 0
    while start < len(records):
        size = rng.choice((1, 2, 3, 5, 8, 13, 40, len(records)))
        out.append(records[start:start + size])
        start += size
    return out


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return two_scans()


@pytest.fixture(scope="module")
def assets_ledger() -> Ledger:
    return asset_runs()


class ProjectionCase:
    """The read-model tests; a subclass per database gives `create_connection()`."""

    def create_connection(self):
        """A connection to an empty database, rows as mappings, in autocommit mode."""
        raise NotImplementedError

    # --- helpers ----------------------------------------------------------------------------------

    def new_database(self):
        conn = self.create_connection()
        read_models.create(conn)
        return conn

    def apply(self, conn, batch: list[Record]) -> None:
        with transaction(conn):
            projection.apply_batch(conn, batch)

    def project(self, batched: list[list[Record]]):
        conn = self.new_database()
        for batch in batched:
            self.apply(conn, batch)
        return conn

    def rows(self, conn, skip: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
        return {table: sorted((tuple(r) for r in conn.execute(f"SELECT * FROM {table}")), key=repr)
                for table in read_models.TABLES if table not in skip}

    def reference(self, ledger: Ledger) -> dict[str, list[tuple]]:
        """The ledger in the order it was written, a record per batch."""
        conn = self.project([[rec] for rec in ledger.written])
        try:
            return self.rows(conn)
        finally:
            conn.close()

    # --- the tests --------------------------------------------------------------------------------

    def test_the_reference_order_projects_both_scans(self, ledger):
        conn = self.project([[rec] for rec in ledger.written])
        scans = {r["scan_id"]: r for r in conn.execute("SELECT * FROM rm_scans")}
        assert set(scans) == {"s1", "s2"}
        s1, s2 = scans["s1"], scans["s2"]
        assert (s1["status"], s1["finalized"], s1["deleted_at"] is not None) == ("completed", 1, True)
        assert (s2["status"], s2["finalized"], s2["deleted_at"]) == ("completed", 1, None)
        for scan in (s1, s2):
            assert scan["violations_seen"] == scan["violation_count"] > 0
            assert scan["rule_evals_done"] == scan["rule_evals_total"] == 2 * scan["units_total"]
            assert scan["record_count"] == scan["record_total"] == 4 * scan["units_total"]
        assert s1["delta"] is None and s2["delta"] is not None  # s2 is compared with s1
        assert conn.execute("SELECT COUNT(*) FROM rm_scan_requests").fetchone()[0] == 0  # both taken up
        assert [r[0] for r in conn.execute("SELECT status FROM rm_units ORDER BY unit_id")] == ["completed"] * 5
        assert [r[0] for r in conn.execute("SELECT action FROM rm_score_history WHERE scan_id = 's1'"
                                           " ORDER BY position")] == [
            "scan_completed", "violation_dismissed", "violation_resolved", "violation_reopened"]
        assert [r[0] for r in conn.execute("SELECT action FROM rm_score_history WHERE scan_id = 's2'"
                                           " ORDER BY position")] == [
            "scan_partial_failure", "scan_completed", "violation_resolved"]
        assert sorted(r[0] for r in conn.execute("SELECT status FROM rm_violation_status")) == [
            "open", "resolved", "resolved"]
        assert {(t, p): o for t, p, o in conn.execute("SELECT * FROM projector_offsets")} == {
            key: len(stream) for key, stream in ledger.streams.items()}

    def test_a_pending_request_shows_until_the_scan_is_requested(self, ledger):
        run_scan = ledger.streams[(COMMANDS, 0)][0]
        conn = self.project([[run_scan]])
        assert [(r["scan_id"], r["operation_id"]) for r in conn.execute("SELECT * FROM rm_scan_requests")] == [
            ("s1", 1)]
        requested = ledger.streams[(SCAN_EVENTS, 0)][0]
        self.apply(conn, [requested, run_scan])  # and a late copy of the command adds nothing
        assert conn.execute("SELECT COUNT(*) FROM rm_scan_requests").fetchone()[0] == 0

    def test_every_interleaving_and_batching_gives_the_reference_rows(self, ledger):
        expected = self.reference(ledger)
        rng = random.Random(20240301)
        seen = set()
        for _ in range(INTERLEAVINGS):
            order = interleave(ledger, rng)
            seen.add(tuple((r.topic, r.partition, r.offset) for r in order))
            conn = self.project(batches(order, rng))
            try:
                assert self.rows(conn) == expected, [(r.topic, r.partition, r.offset) for r in order]
            finally:
                conn.close()
        assert len(seen) == INTERLEAVINGS  # distinct orders, not the same one again

    def test_monitor_scans_and_syncs_in_every_interleaving(self, assets_ledger):
        """The asset read models: units with their monitors, anomalies, profiles (latest sync wins)."""
        expected = self.reference(assets_ledger)
        assert {t: len(rows) for t, rows in expected.items() if t in (
            "rm_scans", "rm_units", "rm_unit_monitors", "rm_asset_profiles", "rm_violations")} == {
            "rm_scans": 4, "rm_units": 8, "rm_unit_monitors": 8, "rm_asset_profiles": 2, "rm_violations": 4}
        assert sorted((r[0], r[1]) for r in expected["rm_asset_profiles"]) == [(1, "sync2"), (2, "sync2")]
        rng = random.Random(11)
        for _ in range(INTERLEAVINGS // 4):
            order = interleave(assets_ledger, rng)
            conn = self.project(batches(order, rng))
            try:
                assert self.rows(conn) == expected, [(r.topic, r.partition, r.offset) for r in order]
            finally:
                conn.close()

    def test_violations_before_their_scan_is_requested_are_counted(self, ledger):
        """The extreme interleaving: the whole violations topic first, then the rest."""
        first = [r for r in ledger.written if r.topic == VIOLATIONS]
        rest = [r for r in ledger.written if r.topic != VIOLATIONS]
        conn = self.project([first, *[[r] for r in rest]])
        assert self.rows(conn) == self.reference(ledger)

    def test_a_redelivered_batch_changes_nothing(self, ledger):
        rng = random.Random(7)
        for _ in range(20):
            order = interleave(ledger, rng)
            conn = self.project(batches(order, rng))
            try:
                before = self.rows(conn)
                start = rng.randrange(len(order))
                self.apply(conn, order[start:start + rng.randint(1, len(order))])  # same records, same offsets
                assert self.rows(conn) == before
                self.apply(conn, order)  # the whole log again
                assert self.rows(conn) == before
            finally:
                conn.close()

    def test_events_emitted_again_at_later_offsets_change_nothing_but_offsets(self, ledger):
        """At-least-once: the coordinator and evaluators re-emit an event with its id after a crash."""
        conn = self.project([ledger.written])
        before = self.rows(conn, skip=("projector_offsets",))
        again = [Record(r.topic, r.partition, len(ledger.streams[(r.topic, r.partition)]) + i, r.type, r.event)
                 for i, r in enumerate(ledger.written)]
        self.apply(conn, again)
        assert self.rows(conn, skip=("projector_offsets",)) == before

    def test_placeholders_ignored_and_unknown_types_store_only_their_offset(self, ledger):
        conn = self.project([ledger.written])
        before = self.rows(conn, skip=("projector_offsets",))
        end = len(ledger.streams[(SCAN_EVENTS, 0)])
        unknown = {"id": "x1", "type": "scanledger.scan.renamed.v9", "subject": "s1", "time": "t", "data": {}}
        ignored = {"id": "x2", "type": c.WORK_UNIT, "subject": "s1", "time": "t", "data": {"scan_id": "s1"}}
        self.apply(conn, [Record(SCAN_EVENTS, 0, end, None, {}),  # a refused record's placeholder
                          Record(SCAN_EVENTS, 0, end + 1, unknown["type"], unknown),
                          Record(SCAN_EVENTS, 0, end + 2, c.WORK_UNIT, ignored)])
        assert self.rows(conn, skip=("projector_offsets",)) == before
        offset = conn.execute("SELECT next_offset FROM projector_offsets WHERE topic = ? AND partition = 0",
                              (SCAN_EVENTS,)).fetchone()[0]
        assert offset == end + 3


class TestSQLiteProjection(ProjectionCase):
    def create_connection(self):
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn


# --- the registry: every event type is handled or deliberately ignored ------------------------------

@pytest.mark.parametrize("make", [two_scans, asset_runs])
def test_the_ledgers_events_pass_the_projectors_checks(make):
    """The test ledgers hold what the projector would accept: each event as decode_checked returns it."""
    for rec in make().written:
        assert decode_checked(encode(rec.event)) == rec.event


def test_every_contract_type_is_handled_or_explicitly_ignored():
    handled, ignored = set(projection.HANDLERS), set(projection.IGNORED)
    assert not handled & ignored
    assert handled | ignored == set(c.MODELS)
    assert all(projection.IGNORED[t] for t in ignored)  # each with its reason


def test_every_type_constant_of_the_contracts_is_a_model():
    constants = {v for k, v in vars(c).items() if k.isupper() and isinstance(v, str) and v.startswith("scanledger.")}
    assert constants == set(c.MODELS)


def test_the_batched_and_self_idempotent_types_are_handled():
    assert projection.BATCHED <= projection.SELF_IDEMPOTENT <= set(projection.HANDLERS)


def test_every_table_of_the_schema_belongs_to_one_read_model_or_the_bookkeeping():
    owned = [t for model in projection.READ_MODELS for t in model.TABLES] + list(read_models.BOOKKEEPING)
    assert sorted(owned) == sorted(read_models.TABLES)  # each once


def test_replay_drops_every_table_the_schema_creates():
    conn = sqlite3.connect(":memory:")
    read_models.create(conn)
    created = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert created == set(read_models.TABLES)
    read_models.drop(conn)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
