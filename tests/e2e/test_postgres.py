"""The stores on a real PostgreSQL server (harness/databases.py starts one, whatever database the
rest of the suite runs on): the same SQL as on SQLite gives the same rows, ids, order, config images
and locking."""
from __future__ import annotations

import threading

import orjson
import pytest

from harness import data, databases
from services import stores
from services.adapters.db import RECORD_ERRORS, connect, transaction
from services.stores import catalog_store, config_log, config_store, read_models


def fresh(kind: str, tmp_path):
    url = databases.server().create() if kind == "postgresql" else f"sqlite:///{tmp_path / 'db.sqlite'}"
    conn = connect(url)
    stores.init(conn, "admin-token")
    read_models.create(conn)
    return url, conn


@pytest.fixture(params=["sqlite", "postgresql"])
def both(request, tmp_path):
    url, conn = fresh(request.param, tmp_path)
    yield conn
    conn.close()
    if request.param == "postgresql":
        databases.remove(url)


def outbox(conn) -> list[tuple[str, dict | None]]:
    return [(r["tbl"], orjson.loads(r["image"]) if r["image"] else None)
            for r in conn.execute("SELECT tbl, image FROM config_outbox ORDER BY seq")]


def test_the_same_writes_give_the_same_rows_order_and_config_images(tmp_path):
    results = {}
    for kind in ("sqlite", "postgresql"):
        _, conn = fresh(kind, tmp_path / kind)
        stores.init(conn, "admin-token")  # again: idempotent
        read_models.create(conn)
        names = [f"p{i}" for i in (3, 1, 2)]
        made = [config_store.add_policy(conn, "default", n, None, data.RULES[:1]) for n in names]
        store = catalog_store.add_datastore(conn, "default", "Lake", "local_dir", "lake", "/x/lake")
        listed = config_store.list_policies(conn, "default")
        images = [(t, {k: v for k, v in (i or {}).items() if k not in ("id", "created_at", "updated_at",
                                                                      "token_hash")}) for t, i in outbox(conn)]
        results[kind] = ([p["name"] for p in listed], store["id"], images, sorted(dict(listed[0])))
        assert [p["id"] for p in listed] == [p["id"] for p in made]  # creation order (rowid)
        conn.close()
    assert results["sqlite"] == results["postgresql"]


def test_an_explicit_id_moves_the_autoincrement_past_it_as_on_sqlite(both):
    with transaction(both):
        both.execute("INSERT INTO datastores (id, workspace_id, name, type, path, resolved_path, created_at)"
                     " VALUES (7, 'default', 'replayed', 'local_dir', 'a', '/a', 'now')")
    assert catalog_store.add_datastore(both, "default", "next", "local_dir", "b", "/b")["id"] == 8
    both.execute("DELETE FROM datastores WHERE id = 8")
    assert catalog_store.add_datastore(both, "default", "after", "local_dir", "c", "/c")["id"] == 9  # never reused


def test_sums_are_numbers_and_rows_read_by_name_and_index(both):
    both.executemany("INSERT INTO projector_offsets (topic, partition, next_offset) VALUES (?, ?, ?)",
                     [("t", p, 10 * p) for p in range(4)])
    row = both.execute("SELECT SUM(next_offset) AS total, COUNT(*) AS n FROM projector_offsets").fetchone()
    assert (row["total"], row[1], type(row["total"])) == (60, 4, int)
    assert dict(row) == {"total": 60, "n": 4}
    assert both.execute("SELECT EXISTS (SELECT 1 FROM projector_offsets)").fetchone()[0] == 1


def test_a_null_where_none_may_be_is_a_record_error(both):
    with pytest.raises(RECORD_ERRORS), transaction(both):
        both.execute("INSERT INTO rm_violation_status (violation_id, scan_id, status, changed_at) VALUES (?, ?, ?, ?)",
                     ("v", "s", None, "now"))


def test_writers_take_turns_as_on_sqlite():
    """Two connections: the second writer's transaction starts only once the first has committed."""
    url = databases.server().create()
    first, second = connect(url), connect(url)
    stores.init(first)
    order = []
    holding, started = threading.Event(), threading.Event()

    def writer():
        started.set()
        with transaction(second):
            order.append("second in")
            second.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('b', 'b', 'now')")

    with transaction(first):
        first.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('a', 'a', 'now')")
        thread = threading.Thread(target=writer)
        thread.start()
        started.wait()
        holding.wait(0.5)  # give the second writer time to reach the lock it must wait for
        order.append("first commits")
    thread.join()
    assert order == ["first commits", "second in"]
    ids = [r[0] for r in first.execute("SELECT id FROM workspaces WHERE id IN ('a', 'b') ORDER BY rowid")]
    assert ids == ["a", "b"]
    first.close()
    second.close()
    databases.remove(url)


def test_config_triggers_log_inserts_updates_and_deletes(both):
    before = config_log.last_seq(both)
    policy = config_store.add_policy(both, "default", "logged", None, data.RULES[:1])
    both.execute("UPDATE policies SET name = 'renamed' WHERE id = ?", (policy["id"],))
    both.execute("DELETE FROM policies WHERE id = ?", (policy["id"],))
    rows = [(r["tbl"], r["key"], r["workspace_id"], orjson.loads(r["image"])["name"] if r["image"] else None)
            for r in both.execute("SELECT * FROM config_outbox WHERE seq > ? ORDER BY seq", (before,))]
    assert rows == [("policies", policy["id"], "default", "logged"), ("policies", policy["id"], "default", "renamed"),
                    ("policies", policy["id"], "default", None)]


def test_a_real_in_a_config_image_is_the_same_double(both):
    """SQLite's json_object wrote 15 significant digits: a replay of the config then differed from the row
    (found by the OpenAPI conformance run's random confidences)."""
    values = [0.4229529456402302, 0.1, 1.0, 2 / 3, 123456.78901234567, 1e-5 * 0.7071067811865476]
    before = config_log.last_seq(both)
    for i, value in enumerate(values):
        both.execute("INSERT INTO custom_detectors (id, workspace_id, name, pattern, confidence, created_at)"
                     " VALUES (?, 'default', ?, 'x', ?, 'now')", (f"d{i}", f"d{i}", value))
    images = [orjson.loads(r["image"])["confidence"]
              for r in both.execute("SELECT image FROM config_outbox WHERE seq > ? ORDER BY seq", (before,))]
    assert images == values  # (PostgreSQL writes 1.0 as 1: the REAL column takes it back as 1.0)


def test_rows_from_before_the_log_are_imported_once_integer_keys_included(both):
    """The bootstrap token's key is an integer: the outbox's is text (PostgreSQL refused `text = bigint`)."""
    with transaction(both):
        both.execute("DELETE FROM config_outbox")  # as a database from before config was on the log
    tables = {"bootstrap_token", "workspaces", "tokens"}
    queued = config_log.import_unlogged(both)
    keys = {(r["tbl"], r["key"]) for r in both.execute("SELECT tbl, key FROM config_outbox")}
    assert queued == len(keys) and {t for t, _ in keys} >= tables and ("bootstrap_token", "1") in keys
    assert config_log.import_unlogged(both) == 0  # waiting in the outbox already


def test_many_rows_go_through_copy_with_the_same_count_and_refusals_as_one_by_one(both):
    from services.readmodels.violations import COLUMNS, INSERT

    def row(i: int, value="1.5"):
        named = {"violation_id": f"v{i}", "scan_id": "s", "rule_id": "r", "severity": "high", "record_index": i,
                 "record_key": f"k{i}", "value": value, "signature": "sig", "detected_at": "2024"}
        return tuple(named.get(column) for column in COLUMNS)

    with transaction(both):
        assert both.executemany(INSERT, [row(i) for i in range(500)]).rowcount == 500
    with transaction(both):  # half of them again, and a duplicate within the batch: 250 new rows
        assert both.executemany(INSERT, [row(i) for i in range(250, 750)] + [row(700)]).rowcount == 250
    with pytest.raises(RECORD_ERRORS), transaction(both):
        both.executemany(INSERT, [row(i) for i in range(1000, 1300)] + [row(2000, {"a": 1})])
    assert both.execute("SELECT COUNT(*) FROM rm_violations").fetchone()[0] == 750


def test_days_ids_and_nul_read_as_on_sqlite(both):
    row = both.execute("SELECT date(?, ?), date(?, ?), CAST(? AS INTEGER) = 5, ? = ?",
                       ("2024-01-15T23:30:00.000Z", "+60 minutes", "2024-01-15T23:30:00Z", "-30 minutes", "5",
                        "a\x00b", "a\x00b")).fetchone()
    assert tuple(row) == ("2024-01-16", "2024-01-15", 1, 1)
    # a key with a NUL finds nothing (none can be stored on PostgreSQL; SQLite simply has none)
    assert both.execute("SELECT * FROM workspaces WHERE id = ?", ("a\x00b",)).fetchall() == []
