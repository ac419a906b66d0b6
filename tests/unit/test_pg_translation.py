"""How services/adapters/pg.py turns the SQLite statements of the stores and read models into
PostgreSQL's (pure: no server; tests/e2e/test_postgres.py runs them on a real one)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.adapters.pg import HIDDEN, WRITE_LOCK, ddl, split_script, translate
from services.stores import config_log, config_store, read_models


def test_placeholders_become_text_format_and_a_literal_percent_is_doubled():
    (sql,) = translate("SELECT * FROM t WHERE a = ? AND b LIKE 'x%' AND c = '?' AND d::text = ?")
    assert sql == "SELECT * FROM t WHERE a = %t AND b LIKE 'x%%' AND c = '?' AND d::text = %t"
    (named,) = translate("UPDATE t SET a = :a WHERE b = :b AND c::int = 1", True)
    assert named == "UPDATE t SET a = %(a)t WHERE b = %(b)t AND c::int = 1"


@given(st.text(alphabet="?:%'ab ", max_size=30))
def test_placeholders_outside_literals_only(text):
    quoted = "'" + text.replace("'", "''") + "'"
    (sql,) = translate(f"SELECT {quoted}, ?")
    assert sql == f"SELECT {quoted.replace('%', '%%')}, %t"


def test_sqlites_write_lock_is_an_advisory_lock_and_a_snapshot_repeatable_read():
    assert translate("BEGIN IMMEDIATE") == ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
    assert translate("BEGIN DEFERRED") == ("BEGIN ISOLATION LEVEL REPEATABLE READ",)
    assert translate("PRAGMA journal_mode=WAL") == ()
    (info,) = translate("PRAGMA table_info(rm_scans)")
    assert "information_schema.columns" in info and "'rm_scans'" in info and f"<> '{HIDDEN}'" in info


def test_json_each_and_julianday():
    (sql,) = translate("SELECT value FROM json_each(:ids) WHERE julianday(s.a) - julianday(s.b) > 1", True)
    assert sql == ("SELECT value FROM json_array_elements_text(CAST(%(ids)t AS json)) WHERE"
                   " (EXTRACT(EPOCH FROM CAST(s.a AS timestamptz)) / 86400.0) -"
                   " (EXTRACT(EPOCH FROM CAST(s.b AS timestamptz)) / 86400.0) > 1")


def test_json_paths_of_object_keys():
    (sql,) = translate("SELECT CAST(json_extract(r.request, '$.datastore.id') AS INTEGER) FROM rm_scan_requests r"
                       " WHERE EXISTS (SELECT 1 FROM json_each(r.request, '$.targets') t"
                       " WHERE json_extract(t.value, '$.container.id') = ?)")
    assert sql == ("SELECT CAST((CAST(r.request AS json) #>> '{datastore,id}') AS INTEGER) FROM rm_scan_requests r"
                   " WHERE EXISTS (SELECT 1 FROM json_array_elements_text(CAST(r.request AS json) #> '{targets}') t"
                   " WHERE (CAST(t.value AS json) #>> '{container,id}') = %t)")


def test_ddl_types_collation_hidden_rowid_and_autoincrement():
    table, *auto = ddl("CREATE TABLE IF NOT EXISTS d (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
                       " score REAL, raw BLOB)")
    assert table == ('CREATE TABLE IF NOT EXISTS d (id BIGINT PRIMARY KEY, name TEXT COLLATE "C" NOT NULL,'
                     f" score DOUBLE PRECISION, raw BYTEA, {HIDDEN} BIGINT GENERATED ALWAYS AS IDENTITY)")
    assert auto[0] == "CREATE SEQUENCE IF NOT EXISTS d_id_seq"
    assert "BEFORE INSERT ON d" in auto[2] and "setval('d_id_seq'" in auto[1]
    assert ddl("ALTER TABLE t ADD COLUMN n INTEGER") == ("ALTER TABLE t ADD COLUMN n BIGINT",)


@pytest.mark.parametrize("schema", [read_models.SCHEMA, config_store.SCHEMA, config_log.SCHEMA])
def test_every_schema_statement_translates(schema):
    statements = split_script(schema)
    assert statements and all(not s.endswith(";") for s in statements)
    for statement in statements:
        for sql in translate(statement):
            assert "INTEGER" not in sql and " REAL" not in sql and "AUTOINCREMENT" not in sql
    tables = [s for s in statements if s.startswith("CREATE TABLE")]
    assert len(tables) == len({s.split()[5] for s in tables})


def test_only_plain_inserts_of_placeholders_go_through_copy():
    from services.adapters.pg import _bulk_insert
    from services.readmodels.violations import INSERT

    table, _, rest = _bulk_insert(INSERT)
    assert (table, rest) == ("rm_violations", " ON CONFLICT(violation_id) DO NOTHING")
    assert _bulk_insert("INSERT INTO t (a, b) VALUES (?, ?)") == ("t", "a, b", "")
    for sql in ("INSERT INTO t (a, b) VALUES (?, 1)", "INSERT INTO t (a, b) VALUES (?)",
                "INSERT INTO t (a) VALUES (?) ON CONFLICT(a) DO UPDATE SET a = excluded.a",
                "INSERT INTO t (a) VALUES (?) ON CONFLICT DO NOTHING RETURNING a"):
        assert _bulk_insert(sql) is None, sql


def test_a_day_shifted_by_a_modifier():
    (sql,) = translate("SELECT 1 FROM s WHERE date(s.created_at, ?) = ?")
    assert sql == ("SELECT 1 FROM s WHERE to_char(CAST(s.created_at AS timestamptz) + CAST(%t AS interval),"
                   " 'YYYY-MM-DD') = %t")
