"""File bytes → what the detectors scan: cells with (row, column) or lines with line numbers.

A file is named (its extension says its format; `.gz` is unwrapped first) and given as bytes
or a binary file-like object. Decoding is streaming over a bounded buffer: at most
`Limits.max_bytes` of (decompressed) content is held, and the detectors see it in batches
(`batch_rows` records of csv/parquet/json, `batch_bytes` of jsonl/txt), so a file's findings
need never be held as a table.

Outcomes, as the scan reports them:
- skipped, before anything is decoded: `binary` (a NUL byte in the first 8 KiB of a text
  format, or no format magic; UTF-16 text with its BOM is decoded first, so it is text),
  `unsupported type` (an extension we do not read), `over the size limit` (raw or
  decompressed size above max_bytes);
- failed: `parse error: …` (malformed csv/json/parquet/gzip), raised as FileFailed possibly
  after some pieces were already yielded;
- scanned.

Row numbers are 1-based record numbers (csv: the first record after the header is row 1;
jsonl: the line number; json: the position in the top-level array); columns are names, and
for nested JSON/parquet values dotted paths (`customer.email`), a list item with its 0-based
index (`team[2].mail`, `tags[0]`): every item is a place of its own, with its own finding id.
"""
from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from services.adapters.readers import BOM, TABLE_EXTENSIONS, csv_parse_options, is_blank
from services.domain.detectors import Engine, Finding, LineState, Piece

FORMATS = {**TABLE_EXTENSIONS, ".txt": "txt", ".log": "txt", ".text": "txt"}  # and plain text, for detectors
SKIP_BINARY, SKIP_UNSUPPORTED, SKIP_TOO_BIG = "binary", "unsupported type", "over the size limit"
_LIST_INDEX = re.compile(r"\[\d+\]")
_PATH_CHARS = re.compile(r'[.\[\]"]')
# A line of JSON Lines that does not open an object (or a trailing newline): see _arrow_json. One
# character after a newline: re finds it at memchr speed, where two bytes.count() passes took 3x as long.
_NOT_AN_OBJECT = re.compile(rb"\n(?!\{)")


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 256 << 20  # raw and decompressed
    batch_rows: int = 65_536
    batch_bytes: int = 4 << 20


class FileSkipped(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FileFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class FileScan:
    status: str  # scanned | skipped | failed
    reason: str | None = None
    format: str | None = None
    size: int = 0  # bytes of content scanned (decompressed)
    findings: list[Finding] = field(default_factory=list)  # on failure: those found before it


def file_format(name: str) -> tuple[str | None, bool]:
    """(format or None, gzipped) from the name: data.csv.gz → ("csv", True)."""
    path = PurePath(name.lower())
    gz = path.suffix == ".gz"
    if gz:
        path = path.with_suffix("")
    return FORMATS.get(path.suffix), gz


def scan_file(source: bytes | BinaryIO, name: str, engine: Engine | None = None,
              limits: Limits = Limits()) -> FileScan:
    return scan_files([(source, name)], engine, limits)[0]


def scan_files(files: Iterable[tuple[bytes | BinaryIO, str]], engine: Engine | None = None,
               limits: Limits = Limits(), batch_bytes: int = 8 << 20) -> list[FileScan]:
    """Each file scanned, skipped or failed. Pieces of several files are scanned as one batch of
    about `batch_bytes` (small files would otherwise pay the engine's per-batch cost each)."""
    engine = engine or Engine()
    results: list[FileScan] = []
    batch: list[tuple[FileScan, Piece, LineState | None]] = []
    size = 0

    def flush() -> None:
        nonlocal size
        found = engine.scan([p for _, p, _ in batch], [st for _, _, st in batch])
        for (result, _, _), findings in zip(batch, found, strict=True):
            result.findings += findings
        batch.clear()
        size = 0

    for source, name in files:
        try:
            fmt, data = load(source, name, limits)
        except (FileSkipped, FileFailed) as outcome:
            status = "skipped" if isinstance(outcome, FileSkipped) else "failed"
            results.append(FileScan(status, outcome.reason, file_format(name)[0]))
            continue
        result = FileScan("scanned", format=fmt, size=len(data))
        results.append(result)
        state = LineState()
        try:
            for piece in pieces(fmt, data, limits):
                batch.append((result, piece, state if piece.column is None else None))
                size += piece.values.nbytes
                if size >= batch_bytes:
                    flush()
        except FileFailed as fail:
            result.status, result.reason = "failed", fail.reason
    flush()
    return results


def load(source: bytes | BinaryIO, name: str, limits: Limits = Limits()) -> tuple[str, bytes]:
    """The format and the (decompressed) content, or FileSkipped / FileFailed."""
    fmt, gz = file_format(name)
    if fmt is None:
        raise FileSkipped(SKIP_UNSUPPORTED)
    data = _read_bounded(source, limits.max_bytes)
    if gz or data[:2] == b"\x1f\x8b":
        data = _gunzip(data, limits.max_bytes)
    if fmt == "parquet":
        if data[:4] != b"PAR1":
            raise FileSkipped(SKIP_BINARY) if b"\x00" in data[:8192] else FileFailed("parse error: not a Parquet file")
        return fmt, data
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # Windows exports: text, not binary
        try:
            data = data.decode("utf-16").encode()
        except UnicodeDecodeError as exc:
            raise FileFailed(f"parse error: bad UTF-16 text ({exc.reason})") from None
    if b"\x00" in data[:8192]:
        raise FileSkipped(SKIP_BINARY)
    return fmt, data


def pieces(fmt: str, data: bytes, limits: Limits = Limits()) -> Iterator[Piece]:
    if fmt != "parquet" and is_blank(data):
        return iter(())  # an empty file is scanned and holds nothing
    return {"csv": _csv, "json": _json, "jsonl": _jsonl, "parquet": _parquet, "txt": _txt}[fmt](data, limits)


# -- bytes -------------------------------------------------------------------------------------------

def _read_bounded(source: bytes | BinaryIO, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) > max_bytes:
            raise FileSkipped(SKIP_TOO_BIG)
        return bytes(source)
    data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileSkipped(SKIP_TOO_BIG)
    return data


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            out = unzipped.read(max_bytes + 1)  # a gzip bomb stops here
    except (OSError, EOFError, zlib.error) as exc:
        raise FileFailed(f"parse error: bad gzip data ({exc})") from None
    if len(out) > max_bytes:
        raise FileSkipped(SKIP_TOO_BIG)
    return out


# -- csv -----------------------------------------------------------------------------------------------

def _csv(data: bytes, limits: Limits) -> Iterator[Piece]:
    buf = pa.py_buffer(data)
    if data.startswith(BOM):
        buf = buf[len(BOM):]
    try:
        names = _csv_header(buf)
        # Every column as text: a card number column must not become a float. No threads, as for
        # parquet and json: the files are mostly a block or two, which threads only slow.
        reader = pacsv.open_csv(
            pa.BufferReader(buf), read_options=pacsv.ReadOptions(block_size=limits.batch_bytes, use_threads=False),
            parse_options=csv_parse_options(),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 null_values=[""], strings_can_be_null=True))
        row = 1
        for batch in reader:
            yield from _table_pieces(batch, row)
            row += batch.num_rows
    except pa.ArrowInvalid as exc:
        raise FileFailed(f"parse error: {str(exc).removeprefix('CSV parse error: ')}") from None


def _csv_header(buf: pa.Buffer) -> list[str]:
    """The column names: split by hand when the header line has no quotes (the usual case),
    else by pyarrow from the first block (a second parse of it)."""
    head = buf[:1 << 16].to_pybytes()
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b'"' not in line and b"\n" in head:
        try:
            return line.decode().split(",")
        except UnicodeDecodeError:
            pass
    return pacsv.open_csv(pa.BufferReader(buf), read_options=pacsv.ReadOptions(block_size=1 << 16),
                          parse_options=csv_parse_options()).schema.names


# -- parquet -------------------------------------------------------------------------------------------

def _parquet(data: bytes, limits: Limits) -> Iterator[Piece]:
    try:
        file = pq.ParquetFile(pa.BufferReader(data))
        row = 1
        # use_threads=False: for files of a few thousand rows, starting threads costs more than it saves
        for batch in file.iter_batches(batch_size=limits.batch_rows, use_threads=False):
            yield from _table_pieces(batch, row)
            row += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise FileFailed(f"parse error: {exc}") from None


def _table_pieces(batch: pa.RecordBatch | pa.Table, first_row: int) -> Iterator[Piece]:
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        yield from _column_pieces(name, column, first_row, None, None)


def _column_pieces(name: str, column: pa.Array | pa.ChunkedArray, first_row: int, rows: pa.Array | None,
                   paths: pa.Array | None) -> Iterator[Piece]:
    """`name`: the column's path with `[]` for list items; `paths`: under a list, each value's own path."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind):
        yield from _column_pieces(name, column.dictionary_decode(), first_row, rows, paths)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        yield Piece(name, column, first_row, rows, paths)
    elif pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        yield Piece(name, pc.cast(column, pa.string()), first_row, rows, paths)  # card numbers stored as ints
    elif pa.types.is_struct(kind):
        for i, child in enumerate(kind):
            step = _step(child.name)
            child_paths = None if paths is None else pc.binary_join_element_wise(paths, step, "")
            yield from _column_pieces(f"{name}{step}", column.field(i), first_row, rows, child_paths)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        parents = pc.list_parent_indices(column)
        item_rows = pc.add(parents, first_row) if rows is None else pc.take(rows, parents)
        yield from _column_pieces(f"{name}[]", column.flatten(), first_row, item_rows,
                                  _item_paths(name, paths, parents))
    # floats, booleans, dates and times, binary: nothing a detector looks for survives in them


def _step(key: str) -> str:
    """A field's step in a path: `.name`, or `["a.b"]` for a name that would read as a path itself
    (two places must never share a path: it is part of a finding's id)."""
    return f".{key}" if key and not _PATH_CHARS.search(key) else "[" + orjson.dumps(key).decode() + "]"


def _item_paths(name: str, paths: pa.Array | None, parents: pa.Array) -> pa.Array:
    """Each item's path: its list's path and its index in that list (`team[2]`). `parents` (the
    list each item belongs to) ascend, so an item's index is its distance from its list's first."""
    at = parents.to_numpy(zero_copy_only=False)
    index = np.arange(len(at)) - np.searchsorted(at, at, side="left")
    base = pa.array(np.full(len(at), name, dtype=object), pa.string()) if paths is None else pc.take(paths, parents)
    return pc.binary_join_element_wise(base, "[", pc.cast(pa.array(index), pa.string()), "]", "")


# -- json ------------------------------------------------------------------------------------------------

def _json(data: bytes, limits: Limits) -> Iterator[Piece]:
    data = data.removeprefix(BOM)
    records = _arrow_json_array(data) if data.lstrip()[:1] == b"[" else None
    if records is not None:
        for start in range(0, len(records), limits.batch_rows):
            batch = pa.RecordBatch.from_struct_array(records.slice(start, limits.batch_rows))
            yield from _table_pieces(batch, start + 1)
        return
    yield from _json_records(data, limits)


def _json_records(data: bytes, limits: Limits) -> Iterator[Piece]:
    """Any JSON document: parsed by orjson; arrays of objects then parsed again by pyarrow as JSON Lines."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if data.lstrip()[:1] == b"{":  # many ".json" exports are one object per line
            yield from _jsonl(data, limits)
            return
        raise FileFailed(f"parse error: {exc}") from None
    records = document if isinstance(document, list) else [document]
    for start in range(0, len(records), limits.batch_rows):
        batch = records[start:start + limits.batch_rows]
        if all(isinstance(r, dict) and r for r in batch):
            # Re-encoded as JSON Lines for pyarrow's parser: faster than walking in Python.
            table = _arrow_json(b"\n".join(map(orjson.dumps, batch)))
            if table is not None and table.num_rows == len(batch):
                yield from _table_pieces(table, start + 1)
                continue
        yield from _record_pieces(enumerate(batch, start + 1))


def _arrow_json_array(data: bytes) -> pa.StructArray | None:
    """A top-level array of objects, parsed by pyarrow as it stands (the field of one object, a
    value that may span lines): no Python object per value, about twice as fast as orjson then
    pyarrow. None when it is anything else or pyarrow cannot (an item that is not an object, a
    null item, a field that changes type, malformed JSON, a key "", an array pyarrow 26 builds broken):
    then the orjson path decides, as before."""
    body = b'{"r":' + data + b"}"
    try:
        table = pajson.read_json(pa.BufferReader(body),
                                 read_options=pajson.ReadOptions(use_threads=False, block_size=len(body) + 1),
                                 parse_options=pajson.ParseOptions(newlines_in_values=True))
        kind = table.schema.types[0] if table.num_columns == 1 and table.num_rows == 1 else None
        if kind is None or not pa.types.is_list(kind) or not pa.types.is_struct(kind.value_type) \
                or _has_empty_key(kind):
            return None
        table.validate(full=True)  # pyarrow 26 builds a list whose first item is null broken: [null, "x"]
        records = table.column(0).combine_chunks().flatten()
    except pa.ArrowException:  # what it refuses, and the broken arrays validate() finds
        return None
    return records if len(records) and not records.null_count else None


def _arrow_json(lines: bytes) -> pa.Table | None:
    """One object per line, no blank lines, parsed by pyarrow (record i is line i + 1); None when
    pyarrow cannot (a field that changes type, an integer past 64 bits): then Python walks it.
    Every line must open an object: pyarrow 26's reader crashes the process (SIGSEGV) on a first
    line `null` followed by an object, and refuses other non-objects anyway. A list whose first
    item is null comes back broken (offsets past its values: ArrowIndexError later): validate()
    finds it. A key "" goes to the orjson path too (see _has_empty_key)."""
    if not lines.startswith(b"{") or _NOT_AN_OBJECT.search(lines):
        return None
    try:
        table = pajson.read_json(pa.BufferReader(lines), read_options=pajson.ReadOptions(use_threads=False),
                                 parse_options=pajson.ParseOptions(newlines_in_values=False))
        table.validate(full=True)
    except pa.ArrowException:
        return None
    return None if any(_has_empty_key(f.type) or not f.name for f in table.schema) else table


def _has_empty_key(kind: pa.DataType) -> bool:
    """A JSON key "" anywhere in a parsed document's type. pyarrow makes it a field named "", which
    the walk over records names [""]: the orjson path takes such documents, so a value has one path
    whichever parser read it. Read off the schema after the parse: a regex over the bytes for
    `""\\s*:` cost as much as a third of pyarrow's parse."""
    if pa.types.is_struct(kind):
        return any(not f.name or _has_empty_key(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_empty_key(kind.value_type)
    return False


def _jsonl(data: bytes, limits: Limits) -> Iterator[Piece]:
    data = data.removeprefix(BOM)
    line_no = 1
    for block in _blocks(data, limits.batch_bytes):
        body = block.rstrip(b"\n")
        if body and b"\r" not in body:  # a blank line is not an object: _arrow_json refuses it
            table = _arrow_json(body)
            lines = body.count(b"\n") + 1
            if table is not None and table.num_rows == lines:
                yield from _table_pieces(table, line_no)
                line_no += lines + max(len(block) - len(body) - 1, 0)  # blank lines stripped off its end
                continue
        yield from _jsonl_python(block, line_no)
        line_no += block.count(b"\n") + (not block.endswith(b"\n"))


def _jsonl_python(block: bytes, line_no: int) -> Iterator[Piece]:
    numbered = []
    for line in block.split(b"\n"):
        if line.strip():
            try:
                numbered.append((line_no, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise FileFailed(f"parse error: line {line_no}: {exc}") from None
        line_no += 1
    yield from _record_pieces(numbered)


def _record_pieces(numbered) -> Iterator[Piece]:
    columns: dict[str, tuple[list[int], list[str]]] = {}
    for row, record in numbered:
        stack: list[tuple[str | None, object]] = [(None, record)]  # None: the record itself
        while stack:  # iterative: a deeply nested document cannot exhaust the Python stack
            path, value = stack.pop()
            if isinstance(value, dict):  # a record's own fields by their names, as a table's columns
                stack += [(path + _step(k) if path is not None else k or '[""]', v) for k, v in reversed(value.items())]
            elif isinstance(value, list):
                stack += [(f"{path or ''}[{i}]", v) for i, v in reversed(list(enumerate(value)))]
            elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
                # grouped by the path without list indexes (a column), each value keeping its own path
                path = path or ""  # a record that is a value: its column is "$"
                rows, values, paths = columns.setdefault(_LIST_INDEX.sub("[]", path) if "[" in path else path,
                                                         ([], [], []))
                rows.append(row)
                values.append(value if isinstance(value, str) else str(value))
                paths.append(path)
    for column, (rows, values, paths) in columns.items():
        yield Piece(column or "$", pa.array(values, pa.string()), rows[0], pa.array(rows, pa.int64()),
                    pa.array(paths, pa.string()) if "[" in column else None)


# -- text -----------------------------------------------------------------------------------------------

def _txt(data: bytes, limits: Limits) -> Iterator[Piece]:
    line = 1
    for block in _blocks(data.removeprefix(BOM), limits.batch_bytes):
        try:
            text = pa.array([block], pa.binary()).cast(pa.string())
        except pa.ArrowInvalid:  # not UTF-8: scan what decodes, the rest becomes U+FFFD
            text = pa.array([block.decode("utf-8", errors="replace")], pa.string())
        lines = pc.split_pattern(text, "\n").flatten()
        if block.endswith(b"\n"):
            lines = lines.slice(0, len(lines) - 1)
        yield Piece(None, lines, line)
        line += len(lines)


def _blocks(data: bytes, size: int) -> Iterator[bytes]:
    """Slices of about `size` bytes, each ending at a line break (or the end of the data)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + size)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end
