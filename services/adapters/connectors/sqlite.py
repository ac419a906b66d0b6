"""`sqlite`: every table of a database; a table's bytes are its rows as CSV."""
from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from services.adapters.connectors.base import Connector, ConnectorError, Resource, ResourceError, selected
from services.domain.envelope import iso

SQLITE_TYPES = (("INT", pa.int64()), ("REAL", pa.float64()), ("FLOA", pa.float64()), ("DOUB", pa.float64()),
                ("BOOL", pa.bool_()))


def _arrow_type(declared: str) -> pa.DataType:
    """SQLite's type affinity rules, roughly: declared INT → int64, REAL/FLOAT/DOUBLE → float64."""
    upper = (declared or "").upper()
    return next((t for marker, t in SQLITE_TYPES if marker in upper), pa.string())


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteConnector(Connector):
    """Tables as resources. A table's bytes are its rows as CSV (a header, then the rows);
    its size is unknown without reading it (None), its mtime the database file's."""
    type = "sqlite"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def probe(self, sample: str | None = None) -> None:
        if not self.path.is_file():
            raise ConnectorError(f'database file "{self.path}" does not exist', 409, "missing")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def list_resources(self, prefixes=(), extensions=None) -> Iterator[Resource]:
        try:
            with self._connect() as db:
                rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                                  " ORDER BY name").fetchall()
            mtime = iso(max(p.stat().st_mtime for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                            if p.exists()))
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise ConnectorError(f'cannot read SQLite database "{self.path.name}": {exc}', 409, "unavailable") from None
        for (name,) in rows:
            if selected(name, prefixes):  # a table has no extension: file type filters do not apply
                yield Resource(name, None, mtime, kind="table")

    def _rows(self, name: str, limit: int | None = None) -> tuple[list, list]:
        try:
            with self._connect() as db:
                columns = db.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()
                if not columns:
                    raise ResourceError(f'table "{name}" not found', "missing")
                sql = f"SELECT * FROM {_quoted(name)}" + ("" if limit is None else " LIMIT ?")
                rows = db.execute(sql, () if limit is None else (limit,)).fetchall()
        except sqlite3.Error as exc:
            raise ResourceError(f'cannot read table "{name}": {exc}') from None
        return columns, rows

    def open(self, name: str) -> BinaryIO:
        columns, rows = self._rows(name)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow([c[1] for c in columns])
        writer.writerows(rows)
        return io.BytesIO(text.getvalue().encode())

    def read_table(self, name: str, max_records: int, dialect: dict | None = None) -> pa.Table:
        columns, rows = self._rows(name, max_records + 1)  # a table has types of its own: no dialect
        if len(rows) > max_records:
            raise ResourceError(f'table "{name}" has more than {max_records} rows', "too_large")
        arrays = {}
        for i, (_, col, declared, *_rest) in enumerate(columns):
            values = [r[i] for r in rows]
            try:
                arrays[col] = pa.array(values, type=_arrow_type(declared))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed values in a loosely typed column
                arrays[col] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        return pa.table(arrays)
