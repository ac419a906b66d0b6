"""Configuration on the log: every change to a config row is a ConfigChanged event on the config
topic before it is answered, and the row follows the event (as the read models follow theirs).

How a change gets there, with no dual write:
- triggers on every LOGGED table (SQLite's, or PostgreSQL's doing the same) copy each inserted,
  updated or deleted row into `config_outbox`, in the transaction that changes it, so no write
  path can skip the log;
- the API runs a config change as one transaction (api.web.changes) that, before it commits,
  publishes the outbox rows in order (acked, with an expiry like a command's) and records the
  offset each got as its row's version (`config_versions`). A change whose publish fails rolls
  back: nothing changed, and an event that reaches the log after its expiry is ignored;
- the projector applies every ConfigChanged whose offset is newer than the row's version
  (apply), so a change whose event is on the log but whose transaction never committed (the API
  died in between) still arrives, and replay rebuilds the config tables from the log alone.

Rows another process wrote (the bootstrap admin token) and rows from before config was on the
log wait in the outbox (import_unlogged) until the API publishes them, first, in their order.
"""
from __future__ import annotations

from typing import Any

import orjson

from services.adapters.db import on_postgres, transaction
from services.domain import command_expiry
from services.domain import contracts as c
from services.domain.envelope import make_event, new_id, with_actor
from services.domain.vocabulary import API_SOURCE
from services.stores.config_store import DEFAULT_WORKSPACE

# table -> its key column. Not here: leases, run ids and Idempotency-Key answers (operational, not
# configuration), and the read models (the projector's, from events already).
LOGGED: dict[str, str] = {
    "workspaces": "id", "tokens": "token_hash", "bootstrap_token": "id", "uploads": "id", "mappings": "id",
    "policies": "id", "datastores": "id", "assets": "id", "monitors": "id", "connectors": "id",
    "custom_detectors": "id", "allowlist": "id", "worker_tokens": "token_hash",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS config_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, key TEXT NOT NULL, workspace_id TEXT NOT NULL,
    image TEXT);
CREATE TABLE IF NOT EXISTS config_versions (
    tbl TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (tbl, key));
"""


def _columns(conn, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _image(columns: list[str], ref: str, postgres: bool = False) -> str:
    """SQL for a row (NEW, OLD, or an alias) as a JSON object of its columns. SQLite's json_object writes
    a REAL with 15 significant digits (0.4229529456402302 became 0.42295294564023, so a replay of the
    config differed from the row), so a REAL goes in with 17, which gives the same double back
    (checked over 400,000 values from 1e-5 to 1e6; only magnitudes near the double's limits may be off
    in the last digit). PostgreSQL's json_build_object writes the shortest exact form already."""
    def value(col: str) -> str:
        v = f'{ref}."{col}"'
        return v if postgres else f"CASE typeof({v}) WHEN 'real' THEN json(printf('%!.17g', {v})) ELSE {v} END"

    pairs = ", ".join(f"'{col}', {value(col)}" for col in columns)
    return f"json_build_object({pairs})::text" if postgres else f"json_object({pairs})"


def _workspace(table: str, columns: list[str], ref: str) -> str:
    """SQL for the workspace a row belongs to (the event's workspaceid)."""
    if "workspace_id" in columns:
        return f"{ref}.workspace_id"
    return f"{ref}.id" if table == "workspaces" else f"'{DEFAULT_WORKSPACE}'"


def _triggers(table: str, key: str, columns: list[str]) -> dict[str, str]:
    """The three triggers that copy a row of `table` into the outbox, by name."""
    def trigger(when: str, ref: str, row: str) -> str:
        return (f"CREATE TRIGGER config_log_{table}_{when.lower()} AFTER {when} ON {table} BEGIN"
                f" INSERT INTO config_outbox (tbl, key, workspace_id, image)"
                f" VALUES ('{table}', {ref}.{key}, {_workspace(table, columns, ref)}, {row}); END")

    return {f"config_log_{table}_{w.lower()}": trigger(w, ref, row) for w, ref, row in (
        ("INSERT", "NEW", _image(columns, "NEW")), ("UPDATE", "NEW", _image(columns, "NEW")),
        ("DELETE", "OLD", "NULL"))}


def _pg_trigger(table: str, key: str, columns: list[str]) -> list[str]:
    """PostgreSQL's one trigger a table (and its function) doing what SQLite's three do."""
    def insert(ref: str, row: str) -> str:
        return (f"INSERT INTO config_outbox (tbl, key, workspace_id, image)"
                f" VALUES ('{table}', {ref}.{key}, {_workspace(table, columns, ref)}, {row});")

    return [f"CREATE OR REPLACE FUNCTION config_log_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF TG_OP = 'DELETE' THEN {insert('OLD', 'NULL')} RETURN OLD; END IF;"
            f" {insert('NEW', _image(columns, 'NEW', postgres=True))} RETURN NEW; END $$",
            f"CREATE OR REPLACE TRIGGER config_log_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION config_log_{table}()"]


def init(conn) -> None:
    """The triggers, made again when a logged table gained a column (the outbox and versions tables are
    services.stores.migrations' baseline)."""
    if on_postgres(conn):
        with transaction(conn):
            for table, key in LOGGED.items():
                for statement in _pg_trigger(table, key, _columns(conn, table)):
                    conn.execute(statement)
        return
    existing = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
    wanted = {name: sql for table, key in LOGGED.items()
              for name, sql in _triggers(table, key, _columns(conn, table)).items()}
    stale = {name for name, sql in wanted.items() if existing.get(name) != sql}
    if stale:
        with transaction(conn):
            for name in sorted(stale):
                conn.execute(f"DROP TRIGGER IF EXISTS {name}")
                conn.execute(wanted[name])


def import_unlogged(conn) -> int:
    """Queue every config row that has no version and waits in no outbox (a database from before config
    was on the log) as a change of its own; returns how many."""
    queued = 0
    with transaction(conn):
        for table, column in LOGGED.items():
            columns = _columns(conn, table)
            key = f"CAST(t.{column} AS TEXT)"  # the outbox's keys are text, an id may be an integer: PostgreSQL
            # compares them strictly
            queued += conn.execute(
                f"INSERT INTO config_outbox (tbl, key, workspace_id, image) SELECT '{table}', {key},"
                f" {_workspace(table, columns, 't')}, {_image(columns, 't', on_postgres(conn))} FROM {table} t"
                f" WHERE NOT EXISTS (SELECT 1 FROM config_versions v WHERE v.tbl = '{table}' AND v.key = {key})"
                f" AND NOT EXISTS (SELECT 1 FROM config_outbox o WHERE o.tbl = '{table}' AND o.key = {key})"
                f" ORDER BY t.rowid").rowcount
    return queued


SYSTEM_CHUNK = 500  # rows per event of changes made without an API request (an import may be large)


def last_seq(conn) -> int:
    return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM config_outbox").fetchone()[0]


def has_pending(conn) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM config_outbox)").fetchone()[0] == 1


def pending_events(conn, actor: tuple[str, str] | None, actor_after: int,
                   timeout_s: float) -> list[tuple[list[int], dict]]:
    """The outbox as ConfigChanged events, in order, each with the outbox rows it carries. The rows after
    `actor_after` are the caller's change: one event (all or nothing), with its actor (token id, role).
    Those before waited for a publish (another process's, or imported): events of the system's."""
    rows = conn.execute("SELECT seq, tbl, key, workspace_id, image FROM config_outbox ORDER BY seq").fetchall()
    theirs = [r for r in rows if actor is None or r["seq"] <= actor_after]
    mine = [r for r in rows if actor is not None and r["seq"] > actor_after]
    groups = [theirs[i:i + SYSTEM_CHUNK] for i in range(0, len(theirs), SYSTEM_CHUNK)]
    out = []
    for group in [*groups, mine] if mine else groups:
        changes = [c.ConfigRow(table=r["tbl"], key=r["key"], row=orjson.loads(r["image"]) if r["image"] else None)
                   for r in group]
        event = make_event(c.CONFIG_CHANGED, f"{group[0]['tbl']}/{group[0]['key']}",
                           c.ConfigChanged(changes=changes).model_dump(), id=new_id(), source=API_SOURCE,
                           workspace_id=group[0]["workspace_id"])
        if group is mine:
            event = with_actor(event, *actor)
        out.append(([r["seq"] for r in group], command_expiry.with_expiry(event, timeout_s)))
    return out


def published(conn, seqs: list[int], event: dict, offset: int) -> None:
    """The event is on the log at `offset`: the version of each row it carries; its rows leave the outbox."""
    conn.executemany(
        "INSERT INTO config_versions (tbl, key, version) VALUES (?, ?, ?)"
        " ON CONFLICT(tbl, key) DO UPDATE SET version = CASE WHEN excluded.version > config_versions.version"
        " THEN excluded.version ELSE config_versions.version END",
        [(ch["table"], ch["key"], offset) for ch in event["data"]["changes"]])
    conn.executemany("DELETE FROM config_outbox WHERE seq = ?", [(s,) for s in seqs])


def versions(conn, refs: list[tuple[str, Any]]) -> list[dict]:
    """The version of each (table, key) a scan is requested with, in the order given (a row not yet
    published has none and is left out: the API publishes before it answers, so that is a row that
    another process wrote a moment ago)."""
    out = []
    for table, key in dict.fromkeys((t, str(k)) for t, k in refs):
        row = conn.execute("SELECT version FROM config_versions WHERE tbl = ? AND key = ?", (table, key)).fetchone()
        if row is not None:
            out.append({"table": table, "key": key, "version": row[0]})
    return out


def apply(conn, records) -> None:
    """Apply ConfigChanged records (inside the projector's transaction): each row image newer than the
    row's version, unless the event expired before the broker took it (its change was answered 503).
    The outbox rows the triggers make of these writes are not changes to publish: they go at once."""
    if not records:
        return
    before = last_seq(conn)
    for rec in records:
        if command_expiry.is_expired(rec.event, rec.timestamp):
            continue
        for change in rec.event["data"]["changes"]:
            table, key, row = change["table"], change["key"], change["row"]
            if table not in LOGGED:
                continue  # a table of a newer release: nothing here to apply it to
            held = conn.execute("SELECT version FROM config_versions WHERE tbl = ? AND key = ?",
                                (table, key)).fetchone()
            if held is not None and held[0] >= rec.offset:
                continue
            _apply_image(conn, table, LOGGED[table], key, row)
            conn.execute("INSERT INTO config_versions (tbl, key, version) VALUES (?, ?, ?)"
                         " ON CONFLICT(tbl, key) DO UPDATE SET version = excluded.version", (table, key, rec.offset))
    conn.execute("DELETE FROM config_outbox WHERE seq > ?", (before,))


def _apply_image(conn, table: str, key_column: str, key: str, row: dict | None) -> None:
    if row is None:
        conn.execute(f"DELETE FROM {table} WHERE {key_column} = ?", (key,))
        return
    known = set(_columns(conn, table))
    columns = [col for col in row if col in known]  # a row from another release: the columns this one has
    updates = ", ".join(f"{col} = excluded.{col}" for col in columns if col != key_column)
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                 f" ON CONFLICT({key_column}) DO UPDATE SET {updates}", [row[col] for col in columns])


def rows(conn, table: str) -> list[dict]:
    """Every row of a logged table, in key order (what a test compares live against replayed)."""
    return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {LOGGED[table]}")]
