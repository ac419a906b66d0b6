"""Uploaded bytes → Arrow tables, with errors a user can act on.

Every problem with the input is an InputError (400 malformed, 413 too many records); nothing
else escapes read_table for bad data. Decisions the API relies on:

- CSV: UTF-8, header line first, every row as wide as the header. With `as_text` every
  column keeps its text exactly (uploads: which columns are numbers is decided per mapping
  when a scan is planned, so identifiers never pass through a number). Otherwise types are
  inferred (int, float, bool) but date/time-looking columns stay strings: pyarrow would turn
  them into timestamps and drop or guess time zones, and downstream code parses timestamps
  itself. A number column whose text a number would not keep exactly stays text too: a
  leading zero (`000123`), a leading `+`, or an integer of more than 15 digits.
- Empty cells are null in every column, string columns included (docs/decisions.md: the
  `required` rule flags them, other rules ignore them). Only the empty string is null;
  "NA" or "null" stay text.
- JSON is an array of flat objects, JSON Lines one object per line; both go through
  pyarrow.json so they infer types alike. Nested values are refused in every format.
- CSV dialects (issue 20), sniffed unless a `Dialect` says: the delimiter (`,` `;` tab `|`,
  by csv.Sniffer on the first 64 KiB), the decimal separator (a `;` or tab file whose number
  columns write `1.234,56`: those columns are rewritten `1234.56`, so every reader after this
  one sees plain numbers), an encoding to decode from (UTF-8 and UTF-16 with a BOM are known
  without one), footer lines to drop (a `TOTAL` line), and duplicate header names made unique
  as pandas does (`Amount`, `Amount.1`). What was used comes back with the table.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import re
from dataclasses import dataclass
from pathlib import Path, PurePath

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from services.domain.rules import ISO_TEXT

BOM = b"\xef\xbb\xbf"
_SAMPLE_BYTES = 1 << 20  # the first block is enough to see which columns look like dates

TABLE_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".parquet": "parquet", ".pq": "parquet"}
_CONTENT_TYPES = {
    "text/csv": "csv", "application/csv": "csv", "text/comma-separated-values": "csv",
    "application/json": "json", "text/json": "json",
    "application/x-ndjson": "jsonl", "application/ndjson": "jsonl", "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl", "application/jsonlines": "jsonl",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
    "application/parquet": "parquet",
}


@dataclass(frozen=True)
class Dialect:
    """How a CSV is written; None: sniffed from the file."""
    delimiter: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    skip_footer: int = 0
    dates: str | None = None  # "DMY" or "MDY": how a date written 03/04/2024 reads


DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 << 10
# a number as a decimal-comma locale writes it: 1.234,56 / 1234,56 / -12 (one comma at most, no other mark)
_DECIMAL_COMMA = r"^[+-]?([0-9]{1,3}(\.[0-9]{3})+|[0-9]+)(,[0-9]+)?$"
# a date as people write it, day and month either way round, with a time after it or not
_SLASH_DATE = (r"^(?P<a>[0-9]{1,2})[/.-](?P<b>[0-9]{1,2})[/.-](?P<y>[0-9]{4})"
               r"(?:[ T](?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2}))?)?$")


class InputError(Exception):
    """Bad upload: `message` is safe to show the user, `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def detect_format(filename: str | None, content_type: str | None) -> str:
    """A known extension wins, then a known content type; a file with some other extension
    (.txt, .xlsx, ...) is refused rather than guessed at; with neither, CSV."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix in TABLE_EXTENSIONS:
        return TABLE_EXTENSIONS[suffix]
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    if suffix:
        raise InputError(f"unsupported file type '{suffix}': upload CSV, JSON, JSON Lines or Parquet")
    return "csv"


def read_table(data: bytes, fmt: str, max_records: int, as_text: bool = False) -> pa.Table:
    return read_with_dialect(data, fmt, max_records, as_text)[0]


def read_with_dialect(data: bytes, fmt: str, max_records: int, as_text: bool = False,
                      dialect: Dialect | None = None) -> tuple[pa.Table, dict]:
    """The table, and for a CSV what it was read as: {"dialect": {...}, "renamed_columns": {new: header}}."""
    if fmt not in ("csv", "json", "jsonl", "parquet"):
        raise InputError(f"unsupported format '{fmt}'")
    dialect = dialect or Dialect()
    if fmt != "parquet":
        data = _decoded(data, dialect.encoding)
    if is_blank(data):
        raise InputError("file is empty")
    info: dict = {}
    if fmt == "parquet":
        table = _read_parquet(data, max_records)
    else:
        _require_utf8(data)
        if fmt == "csv":
            table, info = _read_csv_dialect(data, as_text, dialect)
        else:
            table = {"json": _read_json, "jsonl": _read_jsonl}[fmt](data)
    _check_count(table.num_rows, max_records)
    _require_flat(table)
    return table, info


def _decoded(data: bytes, encoding: str | None) -> bytes:
    """UTF-8 bytes: as they are, or decoded from the named encoding, or from UTF-16 with its BOM."""
    if encoding is None and data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        encoding = "utf-16"
    if encoding is None or codecs.lookup(encoding).name == "utf-8":
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"file is not {encoding} text (byte 0x{data[exc.start]:02x} at offset {exc.start})") \
            from None


def _read_csv_dialect(data: bytes, as_text: bool, dialect: Dialect) -> tuple[pa.Table, dict]:
    if dialect.skip_footer:
        lines = data.rstrip(b"\r\n").rsplit(b"\n", dialect.skip_footer)
        data = lines[0] + b"\n" if len(lines) > dialect.skip_footer else b""
        if is_blank(data):
            raise InputError("file is empty once its footer lines are dropped")
    delimiter = dialect.delimiter or _sniff_delimiter(data)
    table, renamed = _read_csv(data, as_text, delimiter)
    decimal = dialect.decimal or ("," if delimiter != "," and _decimal_comma_columns(table) else ".")
    if decimal == ",":
        table = _plain_numbers(table)
    table, dates = _iso_dates(table, dialect.dates)
    return table, {"dialect": {"delimiter": delimiter, "decimal": decimal, "encoding": dialect.encoding or "utf-8",
                               "skip_footer": dialect.skip_footer, "dates": dates}, "renamed_columns": renamed}


def _iso_dates(table: pa.Table, order: str | None) -> tuple[pa.Table, str | None]:
    """Text columns of dates written dd/mm/yyyy or mm/dd/yyyy (some may be ISO already), as ISO 8601:
    the order said (DMY, MDY), or sniffed from the file (a first part over 12 is a day: DMY; a second one:
    MDY). When nothing tells (every part at most 12) and nothing is said, they stay as written (a rule
    counts them unevaluated rather than guess). The order used, or None."""
    # mixed formats: the values not written dd/mm/yyyy are ISO already
    found = _text_columns(table, f"{_SLASH_DATE}|{ISO_TEXT}", _SLASH_DATE)
    if not found:
        return table, order
    if order is None:
        firsts = any(_part_over_12(table.column(n), "a") for n in found)
        seconds = any(_part_over_12(table.column(n), "b") for n in found)
        order = "DMY" if firsts and not seconds else "MDY" if seconds and not firsts else None
        if order is None:
            return table, None
    for name in found:
        table = table.set_column(table.column_names.index(name), name, _as_iso(table.column(name), order))
    return table, order


def _part_over_12(col: pa.ChunkedArray, part: str) -> bool:
    parts = pc.extract_regex(pc.utf8_trim_whitespace(col), _SLASH_DATE)
    return bool(pc.any(pc.greater(pc.cast(pc.struct_field(parts, part), pa.int64()), 12)).as_py())


def _as_iso(col: pa.ChunkedArray, order: str) -> pa.ChunkedArray:
    """dd/mm/yyyy [hh:mm[:ss]] (or mm/dd/…) as yyyy-mm-dd[Thh:mm[:ss]]; blanks and nulls as they were."""
    parts = pc.extract_regex(pc.utf8_trim_whitespace(col), _SLASH_DATE)

    def padded(name: str):
        return pc.utf8_lpad(pc.struct_field(parts, name), 2, "0")

    day, month = (padded("a"), padded("b")) if order == "DMY" else (padded("b"), padded("a"))
    date = pc.binary_join_element_wise(pc.struct_field(parts, "y"), month, day, "-")
    seconds = pc.struct_field(parts, "s")
    time = pc.binary_join_element_wise("T", padded("h"), ":", pc.struct_field(parts, "mi"),
                                       pc.if_else(pc.equal(seconds, ""), "", pc.binary_join_element_wise(":", seconds,
                                                                                                         "")), "")
    iso = pc.binary_join_element_wise(date, pc.if_else(pc.equal(pc.struct_field(parts, "h"), ""), "", time), "")
    return pc.if_else(pc.is_valid(parts), iso, col)


def _sniff_delimiter(data: bytes) -> str:
    """csv.Sniffer on the first lines; a comma when it cannot tell (one column, no delimiter at all)."""
    sample = data[:_SNIFF_BYTES].decode("utf-8", errors="replace").removeprefix("\ufeff")
    if len(data) > _SNIFF_BYTES:
        sample = sample[:sample.rfind("\n") + 1] or sample
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


def _decimal_comma_columns(table: pa.Table) -> list[str]:
    """Text columns whose every non-blank value is a decimal-comma number, one of them with a comma."""
    return _text_columns(table, _DECIMAL_COMMA, ",")


def _text_columns(table: pa.Table, every: str, some: str) -> list[str]:
    """The text columns whose every non-blank value matches `every`, at least one of them `some`."""
    out = []
    for name in table.column_names:
        col = table.column(name)
        if not pa.types.is_string(col.type) or col.null_count == len(col):
            continue
        text = pc.utf8_trim_whitespace(col)
        present = pc.fill_null(pc.not_equal(text, ""), False)
        fits = pc.fill_null(pc.match_substring_regex(text, every), False)
        if pc.all(pc.or_(pc.invert(present), fits)).as_py() and pc.any(pc.match_substring_regex(text, some)).as_py():
            out.append(name)
    return out


def _plain_numbers(table: pa.Table) -> pa.Table:
    """Decimal-comma number columns written as plain numbers: 1.234,56 → 1234.56."""
    for name in _decimal_comma_columns(table):
        col = pc.replace_substring(pc.replace_substring(table.column(name), ".", ""), ",", ".")
        table = table.set_column(table.column_names.index(name), name, col)
    return table


def to_ipc(table: pa.Table) -> bytes:
    """Arrow IPC file format, uncompressed so readers can map it without decoding; one record batch where
    the columns fit in one (a CSV is read in blocks of a megabyte: a 1M-record upload was 56 batches, and
    each unit's take from them cost twice a take from one)."""
    with contextlib.suppress(pa.ArrowInvalid, pa.ArrowCapacityError):  # a column of over 2 GiB of text: in parts
        table = table.combine_chunks()
    return ipc_buffer(table).to_pybytes()


def ipc_buffer(table: pa.Table) -> pa.Buffer:
    """to_ipc's bytes in Arrow's own buffer, not copied into a Python bytes (a 1M-record scan writes 140 MB
    of unit files)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def mapped_ipc(path: Path) -> pa.Table:
    """An IPC file memory-mapped: its columns are the file's pages, not a copy read first."""
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def ipc_head(path: Path, columns: list[str], rows: int) -> pa.Table:
    """The first `rows` rows of some columns of an IPC file, memory-mapped: a look at a large upload
    that reads no more of it than that."""
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    wanted = [c for c in dict.fromkeys(columns) if c in reader.schema.names]
    batches, taken = [], 0
    for i in range(reader.num_record_batches):
        if taken >= rows:
            break
        batch = reader.get_batch(i).select(wanted)
        batches.append(batch.slice(0, rows - taken))
        taken += batches[-1].num_rows
    return pa.Table.from_batches(batches, reader.schema.empty_table().select(wanted).schema)


# -- shared checks ---------------------------------------------------------------------------

def is_blank(data: bytes) -> bool:
    # A regex stops at the first non-blank byte; data.strip() would copy the whole upload.
    return re.match(rb"(?:\xef\xbb\xbf)?\s*\Z", data) is not None


def _require_utf8(data: bytes) -> None:
    # pyarrow would quietly make a binary column (CSV) or keep the bad bytes (JSON Lines).
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "save it as UTF-8") from None


def _check_count(rows: int, max_records: int) -> None:
    if rows > max_records:
        raise InputError(f"upload has more than {max_records} records", status=413)


def _require_flat(table: pa.Table) -> None:
    for field in table.schema:
        if pa.types.is_nested(field.type):
            raise InputError(f"column '{field.name}' holds nested values ({field.type}); upload flat records")


def _temporal(schema: pa.Schema) -> set[str]:
    return {f.name for f in schema if pa.types.is_temporal(f.type)}


# -- CSV ---------------------------------------------------------------------------------------

def _read_csv(data: bytes, all_text: bool, delimiter: str = ",") -> tuple[pa.Table, dict[str, str]]:
    """The table and the header names made unique ({new name: the header's})."""
    buf = pa.py_buffer(data)  # zero-copy; slicing off the BOM copies nothing either
    if data.startswith(BOM):
        buf = buf[len(BOM):]
    csv_ = _Csv(delimiter)
    try:
        sample = _csv_sample_schema(buf, csv_)
        names, renamed = _unique_header(sample.names)
        csv_ = _Csv(delimiter, names)
        sample = _csv_sample_schema(buf, csv_)
        if all_text:
            table = _parse_csv(buf, set(sample.names), csv_)
        else:
            as_text = _temporal(sample)
            table = _parse_csv(buf, as_text, csv_)
            late = _temporal(table.schema)  # a date column the sample saw only empty cells of
            if late:
                table = _parse_csv(buf, as_text | late, csv_)
            table = _keep_identifier_text(buf, table, csv_)
    except pa.ArrowInvalid as exc:
        raise _csv_error(exc, buf, csv_) from None
    _check_quotes_closed(table, data)
    return table, renamed


@dataclass(frozen=True)
class _Csv:
    """How to read this CSV: its delimiter, and its header names once made unique (None: as the file has them)."""
    delimiter: str = ","
    names: list[str] | None = None

    def read_options(self, **kw) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(**kw) if self.names is None else \
            pacsv.ReadOptions(column_names=self.names, skip_rows=1, **kw)


def _unique_header(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """pandas' way: a repeated name gets .1, .2 … (never a name the header has elsewhere)."""
    if any(not name.strip() for name in names):
        raise InputError(f"CSV header has an empty column name (column {_first_blank(names) + 1})")
    taken, used, counts = set(names), set(), {}
    out, renamed = [], {}
    for name in names:
        new = name
        while new in used or (new != name and new in taken):
            counts[name] = counts.get(name, 0) + 1
            new = f"{name}.{counts[name]}"
        used.add(new)
        out.append(new)
        if new != name:
            renamed[new] = name
    return out, renamed


def _csv_sample_schema(buf: pa.Buffer, csv_: _Csv) -> pa.Schema:
    """Infer types from the first block only, to learn which columns to keep as text
    without parsing the whole file twice."""
    reader = pacsv.open_csv(pa.BufferReader(buf), read_options=csv_.read_options(block_size=_SAMPLE_BYTES),
                            parse_options=csv_parse_options(delimiter=csv_.delimiter),
                            convert_options=_csv_convert_options(set()))
    return reader.schema


# What Arrow's threaded reader says when its type inference lost a block it was converting again with a
# looser type (seen in CI on a fault trial's 40,000-row file, once in many thousand reads; pyarrow 26).
_LOST_BLOCK = "a chunk failed converting for an unknown reason"


def _parse_csv(buf: pa.Buffer, as_text: set[str], csv_: _Csv, use_threads: bool = True, on_invalid=None
               ) -> pa.Table:
    try:
        return pacsv.read_csv(pa.BufferReader(buf), read_options=csv_.read_options(use_threads=use_threads),
                              parse_options=csv_parse_options(on_invalid, csv_.delimiter),
                              convert_options=_csv_convert_options(as_text))
    except pa.ArrowException as exc:
        if not use_threads or _LOST_BLOCK not in str(exc):
            raise
    # one thread reads the same bytes to the same table, or names the error the block really had
    return _parse_csv(buf, as_text, csv_, False, on_invalid)


# A cell whose number would not give back its text: a leading zero (not "0" or "0.5"), a
# leading "+", or more than 15 digits before any fraction (a double keeps only ~15-17).
_LOSSY_NUMBER = r"^\s*(\+|-?0[0-9])|^\s*[+-]?[0-9]{16,}"


def _keep_identifier_text(buf: pa.Buffer, table: pa.Table, csv_: _Csv) -> pa.Table:
    """Number columns that would lose their text are read again as text."""
    numeric = [f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    if not numeric:
        return table
    text = pacsv.read_csv(pa.BufferReader(buf), read_options=csv_.read_options(),
                          parse_options=csv_parse_options(delimiter=csv_.delimiter),
                          convert_options=pacsv.ConvertOptions(
                              column_types={name: pa.string() for name in numeric}, include_columns=numeric,
                              null_values=[""], strings_can_be_null=True))
    for name in numeric:
        column = text.column(name)
        if pc.any(pc.match_substring_regex(column, _LOSSY_NUMBER)).as_py():
            table = table.set_column(table.column_names.index(name), name, column)
    return table


def csv_parse_options(on_invalid=None, delimiter: str = ",") -> pacsv.ParseOptions:
    # Quoted fields may span lines (free-text notes do); it costs ~30% parse time, still ~0.1 s/M rows.
    return pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid)


def _csv_convert_options(as_text: set[str]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(column_types={name: pa.string() for name in as_text},
                                null_values=[""], strings_can_be_null=True)


def _check_quotes_closed(table: pa.Table, data: bytes) -> None:
    """pyarrow lets an unclosed quote swallow the rest of the file into one cell, silently.
    That cell is then in the last row and holds a line break; an odd number of quote
    characters in the file tells it from a real multi-line value."""
    if table.num_rows == 0:
        return
    last = table.slice(table.num_rows - 1).to_pylist()[0]
    if any(isinstance(v, str) and "\n" in v for v in last.values()) and data.count(b'"') % 2:
        raise InputError("CSV has a quoted field that is never closed")


def _first_blank(names: list[str]) -> int:
    return next(i for i, name in enumerate(names) if not name.strip())


def _csv_error(exc: pa.ArrowInvalid, buf: pa.Buffer, csv_: _Csv) -> InputError:
    message = str(exc).removeprefix("CSV parse error: ")
    if "Empty CSV" in message:
        return InputError("CSV header has no columns")
    if re.match(r"(Row #\d+: )?Expected \d+ columns, got \d+", message):
        return InputError(_ragged_row_message(buf, csv_))
    return InputError(f"malformed CSV: {message}")


def _ragged_row_message(buf: pa.Buffer, csv_: _Csv) -> str:
    """Only a single-threaded parse knows row numbers, so the error path parses again to
    find the first bad row (counting the header as row 1, skipping blank lines)."""
    bad: list = []

    def on_invalid(row):
        bad.append(row)
        return "error"

    with contextlib.suppress(pa.ArrowInvalid):
        _parse_csv(buf, set(), csv_, use_threads=False, on_invalid=on_invalid)
    if not bad:
        return "malformed CSV: a row does not have the header's number of fields"
    row = bad[0]
    where = f"CSV row {row.number}" if row.number is not None else "a CSV row"
    fields = "field" if row.actual_columns == 1 else "fields"
    return f"{where} has {row.actual_columns} {fields}, expected {row.expected_columns}"


# -- JSON / JSON Lines -----------------------------------------------------------------------

def _read_json(data: bytes) -> pa.Table:
    data = data.removeprefix(BOM)
    if re.match(rb"\s*\{", data):
        return _read_jsonl(data)  # many ".json" exports are really one object per line
    try:
        rows = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}") from None
    if not isinstance(rows, list):
        raise InputError("JSON must be an array of objects")
    if not rows:
        return pa.table({})
    # Re-encode as JSON Lines so both JSON formats infer types the same way.
    return _read_json_lines(b"\n".join(map(orjson.dumps, rows)),
                            lambda: _json_problem(enumerate(rows, 1), "JSON record"))


def _read_jsonl(data: bytes) -> pa.Table:
    data = data.removeprefix(BOM)
    return _read_json_lines(data, lambda: _json_problem(_numbered_lines(data), "JSON Lines line"))


def _read_json_lines(data: bytes, locate) -> pa.Table:
    """`locate` finds the first bad record in Python, called only on error: pyarrow's row
    numbers restart with every block, so they cannot be shown."""
    try:
        table = _parse_json(data)
        dates = _temporal(table.schema)
        if dates:  # pyarrow.json turns ISO-looking strings into timestamps: read those as text
            table = _parse_json(data, pa.schema([(name, pa.string()) for name in dates])).select(table.column_names)
    except pa.ArrowInvalid as exc:
        message = re.sub(r" in row \d+$", "", str(exc).removeprefix("JSON parse error: "))
        raise InputError(locate() or f"malformed JSON: {message}") from None
    return table


def _parse_json(data: bytes, text_fields: pa.Schema | None = None) -> pa.Table:
    options = pajson.ParseOptions(explicit_schema=text_fields, unexpected_field_behavior="infer")
    return pajson.read_json(pa.BufferReader(data), parse_options=options)


def _numbered_lines(data: bytes):
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, exc


_JSON_KINDS = {str: "a string", bool: "a boolean", int: "a number", float: "a number",
               dict: "an object", list: "an array"}


def _json_problem(records, label: str) -> str | None:
    """The first record that is not an object, not JSON, or gives a field a different kind
    of value than earlier records did (null fits any kind; int and float are both numbers)."""
    kinds: dict[str, str] = {}
    for number, record in records:
        if isinstance(record, orjson.JSONDecodeError):
            return f"{label} {number} is not valid JSON: {record}"
        if not isinstance(record, dict):
            return f"{label} {number} is not an object"
        for key, value in record.items():
            if value is None:
                continue
            kind = _JSON_KINDS[type(value)]
            if kinds.setdefault(key, kind) != kind:
                return f"{label} {number}: field '{key}' is {kind}, earlier records have {kinds[key]}"
    return None


# -- Parquet -----------------------------------------------------------------------------------

def _read_parquet(data: bytes, max_records: int) -> pa.Table:
    try:
        file = pq.ParquetFile(pa.BufferReader(data))
        _check_count(file.metadata.num_rows, max_records)  # refuse before decoding anything
        table = file.read()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"malformed Parquet: {exc}") from None
    # Categorical columns arrive dictionary-encoded; downstream code expects plain values.
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table
