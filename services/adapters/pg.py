"""PostgreSQL behind the same small surface as the stdlib's sqlite3 connection, so the stores, read
models and queries keep one SQL text for both databases (services/adapters/db.py picks by URL).

What differs is translated here, once per statement text (cached), not at every call site:
- placeholders: `?` and `:name` become psycopg's text-format `%t` and `%(name)t` (a literal `%` is
  doubled);
- `BEGIN IMMEDIATE`, SQLite's one writer at a time, becomes BEGIN plus a transaction-scoped advisory
  lock that every writer takes: writes stay serialized exactly as on SQLite (the config outbox relies
  on it to put changes on the log in commit order), while reads never wait (MVCC);
  `BEGIN DEFERRED` (a read snapshot) becomes a REPEATABLE READ transaction;
- PRAGMAs are SQLite's tuning and do nothing here, except `table_info`, read from the catalog;
- `json_each(x)` is `json_array_elements_text(x)`, `json_each(x, '$.a')` the same of x's array `a`;
  `json_extract(x, '$.a.b')` x's `a.b` as text (CAST it to compare it as a number); `julianday(x)` a
  day count from the epoch; `date(x, ?)` (a day shifted by a modifier such as '+60 minutes') the same
  day in UTC;
- DDL: INTEGER is BIGINT, REAL double precision, TEXT collates bytewise ("C", as SQLite compares),
  `INTEGER PRIMARY KEY AUTOINCREMENT` a key from a sequence that an explicit id moves past (as
  SQLite's does), and every table gets a hidden `rowid` identity column, so `ORDER BY rowid`
  (creation order) means the same; rows never show it.
Parameters are sent untyped (as SQLite takes any value anywhere) and read back as SQLite gives them:
numeric sums as int or float, never Decimal.
"""
from __future__ import annotations

import re
import zlib
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus
from psycopg.types.string import StrDumperUnknown

WRITE_LOCK = 0x5CA11ED6E4  # the advisory lock key every writer holds for its transaction
HIDDEN = "rowid"

Error = psycopg.Error
# Errors a record's values cause (a NULL where one is not allowed, a value out of range): the projector's
# record faults, as sqlite3.IntegrityError and DataError are SQLite's.
RECORD_ERRORS = (psycopg.errors.IntegrityError, psycopg.errors.DataError)


# --------------------------------------------------------------------------- values


class _Untyped(Dumper):
    """A Python value sent as text of unknown type: the server takes it as the column's type."""
    oid = 0

    def dump(self, obj: Any) -> bytes:
        return str(obj).encode()


class _StrUntyped(StrDumperUnknown):
    """Text as SQLite keeps it, but for NUL, which PostgreSQL's text cannot hold: U+FFFD stands in for it
    (a lookup by a key with a NUL finds nothing, as none was stored; a value keeps every other character)."""

    def dump(self, obj: str):
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


class _BoolUntyped(Dumper):
    oid = 0

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _NumericLoader(Loader):
    """SUM() of integers is numeric in PostgreSQL: an int again (a float if it has a fraction)."""

    def load(self, data) -> int | float:
        text = bytes(data).decode()
        return float(text) if any(c in text for c in ".eEn") else int(text)


class Row(tuple):
    """A row as sqlite3.Row is one: by index, by column name, `dict(row)`, `row.keys()`."""
    __slots__ = ()
    _index: dict[str, int]
    _keys: list[str]

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return self._keys


@lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    keys = list(names)
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(keys)}, "_keys": keys})


def _row_factory(cursor):
    description = cursor.description
    if description is None:
        return None
    names = [d.name for d in description]
    keep = [i for i, n in enumerate(names) if n != HIDDEN]
    cls = _row_class(tuple(names[i] for i in keep))
    if len(keep) == len(names):
        return lambda values: cls(values)
    return lambda values: cls(values[i] for i in keep)


# --------------------------------------------------------------------------- statements

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|::|:[A-Za-z_]\w*|\?|%")
_JSON_PATH = r"'\$\.([\w.]+)'"  # a JSON path of object keys: '$.a.b'
_JSON_EACH_AT = re.compile(rf"\bjson_each\(([\w.]+), {_JSON_PATH}\)", re.I)
_JSON_EXTRACT = re.compile(rf"\bjson_extract\(([\w.]+), {_JSON_PATH}\)", re.I)
_JSON_EACH = re.compile(r"\bjson_each\(([^()]*)\)", re.I)
_JULIANDAY = re.compile(r"\bjulianday\(([^()]*)\)", re.I)
_DATE_SHIFTED = re.compile(r"\bdate\(([^(),]+), \?\)", re.I)
_TABLE_INFO = re.compile(r"^\s*PRAGMA\s+table_info\((\w+)\)\s*$", re.I)
_PRAGMA = re.compile(r"^\s*PRAGMA\b", re.I)


def _placeholders(sql: str, named: bool) -> str:
    def swap(m: re.Match) -> str:
        token = m.group(0)
        if token[0] in "'\"":
            return token.replace("%", "%%")
        if token == "?":
            return "%t"
        if token == "%":
            return "%%"
        if token.startswith(":") and token != "::" and named:
            return f"%({token[1:]})t"
        return token

    return _TOKEN.sub(swap, sql)


def _keys(path: str) -> str:
    """A JSON path's keys ('a.b') as PostgreSQL's path array text (a,b)."""
    return path.replace(".", ",")


@lru_cache(maxsize=4096)
def translate(sql: str, named: bool = False) -> tuple[str, ...]:
    """The PostgreSQL statements for one SQLite statement (empty: nothing to run)."""
    head = sql.lstrip()[:20].upper()
    if head.startswith("BEGIN IMMEDIATE"):
        return ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
    if head.startswith("BEGIN DEFERRED"):
        return ("BEGIN ISOLATION LEVEL REPEATABLE READ",)
    if m := _TABLE_INFO.match(sql):
        return (f"SELECT ordinal_position - 1 AS cid, column_name AS name, data_type AS type FROM "
                f"information_schema.columns WHERE table_schema = current_schema() AND table_name = '{m.group(1)}'"
                f" AND column_name <> '{HIDDEN}' ORDER BY ordinal_position",)
    if _PRAGMA.match(sql):
        return ()
    if head.startswith(("CREATE TABLE", "ALTER TABLE")):
        return ddl(sql)
    sql = _JSON_EACH_AT.sub(lambda m: f"json_array_elements_text(CAST({m[1]} AS json) #> '{{{_keys(m[2])}}}')", sql)
    sql = _JSON_EXTRACT.sub(lambda m: f"(CAST({m[1]} AS json) #>> '{{{_keys(m[2])}}}')", sql)
    sql = _JSON_EACH.sub(r"json_array_elements_text(CAST(\1 AS json))", sql)
    sql = _JULIANDAY.sub(r"(EXTRACT(EPOCH FROM CAST(\1 AS timestamptz)) / 86400.0)", sql)
    sql = _DATE_SHIFTED.sub(r"to_char(CAST(\1 AS timestamptz) + CAST(? AS interval), 'YYYY-MM-DD')", sql)
    return (_placeholders(sql, named),)


_TYPES = ((re.compile(r"\bINTEGER\b"), "BIGINT"), (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
          (re.compile(r"\bBLOB\b"), "BYTEA"), (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'))
_AUTOINCREMENT = re.compile(r"\b(\w+) INTEGER PRIMARY KEY AUTOINCREMENT\b")
_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")


def ddl(sql: str) -> tuple[str, ...]:
    """A CREATE TABLE (or ADD COLUMN) in PostgreSQL's types, with what AUTOINCREMENT and rowid mean."""
    sql = sql.strip().rstrip(";")
    auto = _AUTOINCREMENT.search(sql)
    sql = _AUTOINCREMENT.sub(r"\1 INTEGER PRIMARY KEY", sql)
    for pattern, pg_type in _TYPES:
        sql = pattern.sub(pg_type, sql)
    table = _CREATE.match(sql)
    if not table:
        return (sql,)
    name = table.group(1)
    out = [sql[:sql.rindex(")")] + f", {HIDDEN} BIGINT GENERATED ALWAYS AS IDENTITY)"]
    if auto:
        column = auto.group(1)
        seq = f"{name}_{column}_seq"
        out += [
            f"CREATE SEQUENCE IF NOT EXISTS {seq}",
            # an explicit id (a row replayed from the log) moves the sequence past it, as SQLite's would
            f"CREATE OR REPLACE FUNCTION {name}_{column}_next() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.{column} IS NULL THEN NEW.{column} := nextval('{seq}');"
            f" ELSE PERFORM setval('{seq}', GREATEST(NEW.{column}, (SELECT last_value FROM {seq})));"
            f" END IF; RETURN NEW; END $$",
            f"CREATE OR REPLACE TRIGGER {name}_{column}_next BEFORE INSERT ON {name}"
            f" FOR EACH ROW EXECUTE FUNCTION {name}_{column}_next()"]
    return tuple(out)


BULK_ROWS = 200  # from this many rows, an INSERT's executemany is a COPY (4-10x fewer µs a row)
_INSERT = re.compile(r"^\s*INSERT INTO (\w+) \(([^)]*)\) VALUES \(\?(?:, \?)*\)(.*)$", re.S)


@lru_cache(maxsize=256)
def _bulk_insert(sql: str) -> tuple[str, str, str] | None:
    """(table, columns, its ON CONFLICT DO NOTHING if any) of `INSERT INTO t (cols) VALUES (?, ...)`,
    the shape one INSERT ... SELECT can take for all rows at once (a DO UPDATE could not: two rows of
    one key in a batch update it twice, which PostgreSQL refuses in one statement)."""
    m = _INSERT.match(sql)
    rest = m.group(3).strip() if m else None
    if rest is None or not re.fullmatch(r"(ON CONFLICT\s*(\([\w, ]+\))?\s*DO NOTHING)?", rest):
        return None
    if m.group(2).count(",") + 1 != sql[m.end(2):m.start(3)].count("?"):
        return None
    return m.group(1), m.group(2), f" {rest}" if rest else ""


def split_script(script: str) -> list[str]:
    """The statements of an SQL script (semicolons outside literals and comments)."""
    out, start = [], 0
    for m in re.finditer(r"'(?:[^']|'')*'|--[^\n]*|;", script):
        if m.group(0) == ";":
            out.append(script[start:m.start()])
            start = m.end()
    out.append(script[start:])
    return [s for s in (re.sub(r"--[^\n]*", "", part).strip() for part in out) if s]


# --------------------------------------------------------------------------- the connection


class UnbindableValue(psycopg.DataError):
    """A parameter no column can take (a dict, a list): the record's fault, as sqlite3's binding error is
    (and named as SQLite names it)."""


def _bound(run):
    """Run a statement; a value psycopg cannot send (its client-side ProgrammingError, which has no
    SQLSTATE, unlike the server's errors) becomes UnbindableValue."""
    try:
        return run()
    except psycopg.ProgrammingError as exc:
        if exc.sqlstate is None:
            raise UnbindableValue(f"Error binding parameter: {exc}") from exc
        raise


class _NoRows:
    rowcount = -1
    lastrowid = None
    description = None

    def fetchone(self):
        return None

    def fetchall(self):
        return []

    def __iter__(self):
        return iter(())


class _Counted(_NoRows):
    def __init__(self, rowcount: int):
        self.rowcount = rowcount


class Connection:
    """A PostgreSQL connection that runs SQLite's statements (see the module's docstring)."""

    def __init__(self, url: str, busy_timeout_ms: int):
        self.raw = psycopg.connect(url, autocommit=True, row_factory=_row_factory)
        for cls in (int, float):
            self.raw.adapters.register_dumper(cls, _Untyped)
        self.raw.adapters.register_dumper(bool, _BoolUntyped)
        self.raw.adapters.register_dumper(str, _StrUntyped)
        self.raw.adapters.register_loader("numeric", _NumericLoader)
        # a writer waits this long for the write lock, as SQLite's busy timeout
        self.raw.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
        self.raw.execute("SET TIME ZONE 'UTC'")  # the days date(x, ?) gives, as SQLite's, are UTC days

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, parameters=()):
        named = isinstance(parameters, dict)
        statements = translate(sql, named)
        if not statements:
            return _NoRows()
        cursor = self.raw.cursor()
        for statement in statements[:-1]:
            cursor.execute(statement)
        _bound(lambda: cursor.execute(statements[-1], parameters))
        return cursor

    def executemany(self, sql: str, seq_of_parameters):
        seq = list(seq_of_parameters)
        if not seq:
            return _NoRows()
        bulk = _bulk_insert(sql) if len(seq) >= BULK_ROWS and not isinstance(seq[0], dict) else None
        if bulk is not None:
            return _bound(lambda: self._copy_insert(*bulk, seq))
        (statement,) = translate(sql, isinstance(seq[0], dict))
        cursor = self.raw.cursor()
        _bound(lambda: cursor.executemany(statement, seq))
        return cursor

    def _copy_insert(self, table: str, columns: str, rest: str, seq: list):
        """Many rows of one INSERT: COPY into a temporary table, then one INSERT ... SELECT with the
        statement's own ON CONFLICT; its rowcount is the rows inserted, as executemany's is."""
        stage = f"bulk_{table}_{zlib.crc32(columns.encode()):08x}"
        cursor = self.raw.cursor()
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {columns} FROM {table} WITH NO DATA")
        with cursor.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
            for row in seq:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}{rest}")
        inserted = cursor.rowcount
        cursor.execute(f"TRUNCATE {stage}")
        return _Counted(inserted)

    def executescript(self, script: str):
        """A schema script, under the write lock: PostgreSQL's CREATE ... IF NOT EXISTS is not safe against
        another process creating the same table at the same moment."""
        own = not self.in_transaction
        if own:
            self.execute("BEGIN IMMEDIATE")
        try:
            cursor = self.raw.cursor()
            for part in split_script(script):
                for statement in translate(part):
                    cursor.execute(statement)
        except BaseException:
            if own:
                self.raw.execute("ROLLBACK")
            raise
        if own:
            self.raw.execute("COMMIT")
        return cursor

    def close(self) -> None:
        self.raw.close()
