"""The database's schema version: the one place that says how a database of any earlier shape becomes
the current one, on SQLite and PostgreSQL alike.

`schema_migrations` holds a row for each step applied (version, name, applied_at). Every process that
opens the database runs `migrate` at start (services.stores.init): each step still to apply runs with
its row in one transaction under the write lock (`BEGIN IMMEDIATE`: SQLite's write lock, PostgreSQL's
advisory lock), so the API, projector and a replay starting together apply it once, and a step that
fails leaves the database at the step before. A database at a version this code does not know (a
newer scanledger migrated it) is refused with SchemaTooNew before anything is written.

Step 1, the baseline, runs every store's schema (CREATE ... IF NOT EXISTS, the tables' current
shape): a fresh database is complete after it, and a database from before the version table gets
the tables it lacks. The later steps are the changes made to tables that had already shipped,
in the order they were made; each checks before it changes (a column added only where it is
missing), so on a fresh database it does nothing, and on a database the ad-hoc start-up upgrades of
earlier versions had already brought forward it finds its work done.

A change to the schema: the store's SCHEMA says the new shape (what a fresh database gets). A new
table or index needs no step: the baseline's statements run again at every start after the steps, and
create what is missing. A change to an existing table needs a new step at the end of STEPS that brings
it there (a new index on an added column: that step creates it too, as the baseline skips it on a table
still without the column). Never edit or reorder a step that has shipped. The config log's triggers are
not a step: they follow the logged tables' columns and are remade whenever these changed
(config_log.init, after the steps).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from services.adapters.db import transaction
from services.adapters.pg import split_script
from services.domain.envelope import utcnow
from services.stores import (
    byoc_store,
    catalog_store,
    config_log,
    config_store,
    detector_store,
    read_models,
    request_store,
)

SCHEMA = ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
          " applied_at TEXT NOT NULL)")
SETTING = "SCANLEDGER_DATABASE_URL"


class SchemaTooNew(Exception):
    """The database was migrated by a newer scanledger than this one: its code does not know the schema."""

    def __init__(self, version: int, latest: int):
        super().__init__(f"the database at {SETTING} is at schema version {version}, this scanledger knows up to "
                         f"{latest}: upgrade scanledger (a database is never migrated down)")
        self.version, self.latest = version, latest


@dataclass(frozen=True)
class Step:
    version: int
    name: str
    run: Callable[[object], None]


def _columns(conn, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


_INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS \w+ ON (\w+) \(([^)]*)\)", re.S)


def _baseline(conn) -> None:
    """Every store's schema, a statement at a time (sqlite3's executescript would commit the step's
    transaction). On a database from before the version table, an index on a column that a later step
    adds to an existing table is left to that step (which must create it), not failed on."""
    for store in (config_store, request_store, catalog_store, byoc_store, detector_store, config_log, read_models):
        for statement in split_script(store.SCHEMA):
            index = _INDEX.match(statement)
            if index:
                have = _columns(conn, index.group(1))
                wanted = {c.strip().strip('"') for c in index.group(2).split(",")}
                if have and not wanted <= have:
                    continue
            conn.execute(statement)


def _add_columns(table: str, *columns: tuple[str, str]) -> Callable[[object], None]:
    """A step adding columns a table gained after it shipped (an older row gets the default, or NULL:
    what an event from before the column carries)."""
    def run(conn) -> None:
        have = _columns(conn, table)
        for column, decl in columns:
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    return run


def _drop_indexes(*names: str) -> Callable[[object], None]:
    """A step dropping indexes a later one replaced (the baseline builds the replacement)."""
    def run(conn) -> None:
        for name in names:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
    return run


# In the order the changes were made. Append only.
STEPS: tuple[Step, ...] = (
    Step(1, "baseline: every table and index", _baseline),
    Step(2, "rm_sensitive_findings: LLM Assist's verdict, confidence, model; the detector's confidence",
         _add_columns("rm_sensitive_findings", ("llm_verdict", "TEXT"), ("llm_confidence", "REAL"),
                      ("llm_model", "TEXT"), ("detector_confidence", "REAL"))),
    Step(3, "rm_sensitive_files: occurrences", _add_columns("rm_sensitive_files", ("occurrences", "INTEGER"))),
    Step(4, "rm_violations: record", _add_columns("rm_violations", ("record", "TEXT"))),
    Step(5, "rm_scans: unevaluated", _add_columns("rm_scans", ("unevaluated", "TEXT"))),
    Step(6, "datastores: dialect (issue 20)", _add_columns("datastores", ("dialect", "TEXT"))),
    Step(7, "chunk_leases: the chunk's chain (chain_seq, chain_prev)",
         _add_columns("chunk_leases", ("chain_seq", "INTEGER NOT NULL DEFAULT 0"),
                      ("chain_prev", "TEXT NOT NULL DEFAULT ''"))),
    Step(8, "rm_violations: rm_violations_page replaces rm_violations_scan", _drop_indexes("rm_violations_scan")),
)
LATEST = STEPS[-1].version
assert [s.version for s in STEPS] == list(range(1, LATEST + 1)), "steps are numbered 1, 2, 3, ... in order"


def applied(conn) -> dict[int, tuple[str, str]]:
    """version -> (name, applied_at) of every step the database has (none: a fresh database, or one from
    before the version table)."""
    if not _columns(conn, "schema_migrations"):
        return {}
    return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT version, name, applied_at FROM schema_migrations")}


def version(conn) -> int:
    """The database's schema version: its newest step (0: none)."""
    return max(applied(conn), default=0)


def check(conn) -> int:
    """The database's version; SchemaTooNew when it is newer than this code knows."""
    current = version(conn)
    if current > LATEST:
        raise SchemaTooNew(current, LATEST)
    return current


def pending(conn) -> list[Step]:
    done = applied(conn)
    return [step for step in STEPS if step.version not in done]


def migrate(conn) -> list[Step]:
    """Apply every step the database lacks, each in its own write transaction; the steps applied here
    (none when another process applied them first)."""
    check(conn)  # before any lock: a newer database is refused without waiting for, or blocking, a writer
    ran: list[Step] = []
    for step in pending(conn):
        with transaction(conn):
            conn.execute(SCHEMA)
            check(conn)  # a newer scanledger may have migrated it while this one waited for the lock
            if step.version in applied(conn):
                continue  # another process applied it while this one waited for the lock
            step.run(conn)
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                         (step.version, step.name, utcnow()))
            ran.append(step)
    if ran and ran[0].version == 1:
        return ran
    with transaction(conn):  # a table or index added to a store's SCHEMA since the database's baseline
        _baseline(conn)
    return ran
