"""The pure parts of issue 10's fixes: datastore confinement, idempotency reservations,
bootstrap token rotation, CSV identifiers that keep their text, no score for a failed scan."""
from __future__ import annotations

import sqlite3

import pyarrow as pa
import pytest

from services import stores
from services.adapters.connectors.datastores import (
    DatastoreError,
    check_allowed,
    resolve_path,
    system_paths,
    workspace_root,
)
from services.adapters.readers import read_table
from services.domain import contracts as c
from services.domain import lifecycle
from services.domain.planning import typed_for_scan, with_row_numbers
from services.domain.rules import evaluate, parse_rule
from services.settings import Settings
from services.stores import config_store, request_store
from tests.unit.test_lifecycle import change, started_scan, unit_event


def settings_for(tmp_path, per_workspace=False):
    data = tmp_path / "root" / ".scanledger"
    data.mkdir(parents=True)
    return Settings(datastore_root=tmp_path / "root", datastore_root_per_workspace=per_workspace,
                    data_dir=data, cache_dir=tmp_path / "cache")


def test_the_data_dir_is_never_a_datastore_even_inside_the_root(tmp_path):
    s = settings_for(tmp_path)
    (s.data_dir / "scanledger.db").write_bytes(b"")
    (s.datastore_root / "lake").mkdir()
    (s.datastore_root / "db-link.db").symlink_to(s.data_dir / "scanledger.db")
    (s.datastore_root / "lake" / "data-link").symlink_to(s.data_dir)
    root, forbidden = workspace_root(s, "w"), system_paths(s)
    assert resolve_path(root, "lake", "local_dir", forbidden) == (s.datastore_root / "lake").resolve()
    for path, type_ in ((".", "local_dir"), (".scanledger", "local_dir"),
                        (".scanledger/scanledger.db", "sqlite"), ("db-link.db", "sqlite"),
                        ("lake/data-link", "local_dir"), ("lake/../.scanledger", "local_dir")):
        with pytest.raises(DatastoreError, match="system's own data"):
            resolve_path(root, path, type_, forbidden)
    with pytest.raises(DatastoreError):
        check_allowed(s, "w", "sqlite", s.datastore_root / "db-link.db")
    assert check_allowed(s, "w", "local_dir", s.datastore_root / "lake") == (s.datastore_root / "lake").resolve()


def test_a_workspace_reaches_only_its_own_root(tmp_path):
    s = settings_for(tmp_path, per_workspace=True)
    for ws in ("a", "b"):
        (s.datastore_root / ws / "lake").mkdir(parents=True)
    assert workspace_root(s, "a") == (s.datastore_root / "a").resolve()
    assert resolve_path(workspace_root(s, "a"), "lake", "local_dir", system_paths(s))
    with pytest.raises(DatastoreError, match="outside"):
        resolve_path(workspace_root(s, "b"), "../a/lake", "local_dir", system_paths(s))
    with pytest.raises(DatastoreError, match="outside"):
        check_allowed(s, "b", "local_dir", s.datastore_root / "a" / "lake")


@pytest.fixture
def db():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    stores.init(conn)
    yield conn
    conn.close()


def test_a_key_is_reserved_once_bound_to_its_body_and_expires(db):
    args = ("tok", "k1", "POST /api/scan/run")
    assert request_store.reserve_key(db, *args, "h1", 1000.0, 86400, 120) is None
    held = request_store.reserve_key(db, *args, "h1", 1001.0, 86400, 120)
    assert held["state"] == "pending" and held["body_hash"] == "h1"
    assert request_store.reserve_key(db, "other-token", "k1", args[2], "h1", 1001.0, 86400, 120) is None
    request_store.remember_answer(db, *args, 200, b'{"a": 1}')
    held = request_store.reserve_key(db, *args, "h2", 1002.0, 86400, 120)
    assert held["state"] == "done" and held["body_hash"] == "h1" and bytes(held["body"]) == b'{"a": 1}'
    assert request_store.reserve_key(db, *args, "h2", 1000.0 + 86401, 86400, 120) is None  # expired: ours again


def test_a_released_or_abandoned_reservation_lets_a_retry_run(db):
    args = ("tok", "k", "POST /api/tokens")
    assert request_store.reserve_key(db, *args, "h", 0.0, 86400, 120) is None
    request_store.release_key(db, *args)
    assert request_store.reserve_key(db, *args, "h", 1.0, 86400, 120) is None
    assert request_store.reserve_key(db, *args, "h", 200.0, 86400, 120) is None  # pending since 1.0: abandoned


def test_rotating_the_bootstrap_token_revokes_the_previous_one(db):
    config_store.bootstrap_admin(db, "first")
    config_store.bootstrap_admin(db, "first")  # a restart with the same token changes nothing
    assert config_store.principal(db, "first")["role"] == "Admin"
    config_store.bootstrap_admin(db, "second")
    assert config_store.principal(db, "first") is None
    assert config_store.principal(db, "second")["role"] == "Admin"


def test_a_database_from_before_the_bootstrap_table_rotates_too(db):
    config_store.ensure_workspace(db, "default")
    config_store.add_token(db, "old", "default", "Admin", "admin")  # as the old bootstrap did
    config_store.add_token(db, "issued", "default", "Viewer", "dana")
    config_store.bootstrap_admin(db, "new")
    assert config_store.principal(db, "old") is None
    assert config_store.principal(db, "issued") is not None and config_store.principal(db, "new") is not None


def test_csv_identifiers_keep_their_text():
    table = read_table(b"id,acct,big,amount,small,plus,neg\n"
                       b"000123,123,12345678901234567890,9500.00,0,+5,-012\n"
                       b"2,124,12345678901234567891,1.5,0.5,6,3\n", "csv", 100)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == ["000123", "2"]
    assert [r["big"] for r in rows] == ["12345678901234567890", "12345678901234567891"]
    assert [r["plus"] for r in rows] == ["+5", "6"] and [r["neg"] for r in rows] == ["-012", "3"]
    assert [r["amount"] for r in rows] == [9500.0, 1.5] and [r["small"] for r in rows] == [0.0, 0.5]
    assert [r["acct"] for r in rows] == [123, 124]  # a number that gives back its text stays a number


def test_a_failed_scan_has_no_score_of_100():
    state = started_scan(2)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", c.UNIT_FAILED, r1=0, error="a"), "t2")
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u1", c.UNIT_FAILED, r1=0, error="b"), "t3")
    assert finished["data"]["status"] == "failed" and finished["data"]["compliance_score"] == 0
    state, [changed] = lifecycle.change_violation_status(state, change("resolved"), "t4")
    assert changed["data"]["compliance_score"] == 0


def test_uploads_keep_csv_text_and_a_scan_reads_only_the_amount_as_numbers():
    table = read_table(b"id,acct,amount,qty\n000123,1.50,9500.00,7\n2,1.5,1.5,8\n", "csv", 100, as_text=True)
    assert table.to_pylist()[0] == {"id": "000123", "acct": "1.50", "amount": "9500.00", "qty": "7"}
    typed = typed_for_scan(table, {"account": "acct", "amount": "amount"})
    assert typed.column("amount").to_pylist() == [9500.0, 1.5]
    assert typed.column("acct").to_pylist() == ["1.50", "1.5"] and typed.column("qty").to_pylist() == ["7", "8"]
    # an amount that is not a number stays text, so the rule names the bad value
    assert typed_for_scan(read_table(b"amount\nabc\n", "csv", 9, as_text=True), {"amount": "amount"}).column(
        "amount").to_pylist() == ["abc"]


def test_rules_read_numbers_out_of_text_columns():
    table = with_row_numbers(pa.table({"qty": ["7", "12", "1.50", None]}))
    threshold = parse_rule({"id": "t", "name": "t", "type": "threshold", "severity": "low",
                            "params": {"field": "qty", "op": "gt", "value": "10"}})
    assert evaluate(table, threshold, {}, None).column("row").to_pylist() == [1]  # 12 > 10, not "12" < "10"
    allowed = parse_rule({"id": "a", "name": "a", "type": "allowed_values", "severity": "low",
                          "params": {"field": "qty", "values": [7, 1.5]}})
    assert evaluate(table, allowed, {}, None).column("row").to_pylist() == [1]  # "1.50" is 1.5
