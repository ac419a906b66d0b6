"""Arrow columns written as JSON, a kernel a column instead of a Python step a value: what the evaluator
needs to encode a rule's violations (services.domain.evaluation.encoded_violations) as orjson writes them.

Only a value JSON must escape (a quote, a backslash, a control character) goes through orjson, one by one;
orjson writes every other character as it is (non-ASCII as UTF-8, `/`, U+2028), as Arrow holds it.
A JSON text is built as pieces, constants and columns, joined row by row once (`joined`): each kernel
over a column costs about as much per row as a piece of the join, so a column with no null is written
in place between constant quotes rather than quoted apart."""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from services.domain.envelope import prefix_hash

Pieces = list[pa.Array | str]

_ESCAPED = r'[\x00-\x1f"\\]'  # what orjson escapes in a string: nothing else
_ESCAPED_BYTES = bytes(range(0x20)) + b'"\\'


def text(column: pa.StringArray) -> pa.StringArray:
    """Each string's JSON text between its quotes (null stays null)."""
    if not _may_escape(column):
        return column
    escaped = pc.fill_null(pc.match_substring_regex(column, _ESCAPED), False)
    written = [orjson.dumps(s)[1:-1].decode() for s in column.filter(escaped).to_pylist()]
    return pc.replace_with_mask(column, escaped, pa.array(written, pa.string()))


def _may_escape(column: pa.StringArray) -> bool:
    """Whether a byte JSON escapes is in the column's stretch of its data (bytes.translate deletes them in one
    C pass: a tenth of a numpy pass's fixed cost, half its cost over a slice's 20 kB)."""
    _, offsets, data = column.buffers()
    if column.null_count == len(column) or data is None:
        return False
    bounds = memoryview(offsets).cast("i")
    start, end = bounds[column.offset], bounds[column.offset + len(column)]
    return len(bytes(memoryview(data)[start:end]).translate(None, _ESCAPED_BYTES)) != end - start


def value(text_: pa.StringArray) -> Pieces:
    """A JSON text column's values: "…", or null."""
    if not text_.null_count:
        return ['"', text_, '"']
    if text_.null_count == len(text_):
        return ["null"]
    return [pc.fill_null(joined('"', text_, '"'), "null")]


def integer(column: pa.Int64Array) -> pa.StringArray:
    """An integer column's JSON values (Arrow writes an int64 as orjson does: its digits, a minus)."""
    digits = column.cast(pa.string())
    return pc.fill_null(digits, "null") if column.null_count else digits


def member(name: str, text_: pa.StringArray) -> Pieces:
    """`,"name":"…"` where the column has a value, nothing where it is null."""
    if not text_.null_count:
        return [f',"{name}":"', text_, '"']
    if text_.null_count == len(text_):
        return []
    return [pc.fill_null(joined(f',"{name}":"', text_, '"'), "")]


def joined(*pieces: pa.Array | str) -> pa.Array:
    """The pieces one after another, row by row (null where a column's is), constants next to each other
    joined first. At least one piece is a column."""
    merged: list[pa.Array | pa.Scalar] = []
    constant = ""
    for piece in pieces:
        if isinstance(piece, str):
            constant += piece
            continue
        if constant:
            merged.append(_scalar(constant))
            constant = ""
        merged.append(piece)
    if constant:
        merged.append(_scalar(constant))
    return pc.binary_join_element_wise(*merged, _scalar(""))


@functools.lru_cache(maxsize=1024)
def _scalar(constant: str) -> pa.Scalar:
    """Arrow's scalar of a constant: made from a str at each call it cost 3 µs, a slice's join has 15."""
    return pa.scalar(constant, pa.string())


# a hex digit (its byte) with its two top bits set to 10 (the RFC 4122 variant), as envelope._VARIANT
_VARIANT_OF = np.zeros(256, np.uint8)
_VARIANT_OF[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.frombuffer(b"89ab", np.uint8)[np.arange(16) % 4]
_DASH = ord("-")


def ids(prefix: Sequence[object], keys: list[str], clustered: bool) -> pa.StringArray:
    """The ids of `keys` after a shared prefix, as envelope.clustered_ids(*prefix) or deterministic_ids(*prefix)
    name them: the hashes in Python (hashlib has no column form), their text laid out by numpy."""
    head = prefix_hash(*prefix)
    copy, digests = head.copy, []
    append = digests.append
    for key in keys:
        h = copy()
        h.update(key.encode())
        append(h.hexdigest())
    n = len(keys)
    whole = np.frombuffer("".join(digests).encode(), np.uint8).reshape(n, 40)
    if clustered:  # the prefix's 12 hex digits, then 20 of the whole hash
        hexes = np.empty((n, 32), np.uint8)
        hexes[:, :12] = np.frombuffer(head.hexdigest()[:12].encode(), np.uint8)
        hexes[:, 12:] = whole[:, :20]
    else:
        hexes = whole[:, :32]
    out = np.empty((n, 36), np.uint8)  # envelope._uuid_text's layout
    out[:, :8], out[:, 9:13], out[:, 15:18] = hexes[:, :8], hexes[:, 8:12], hexes[:, 13:16]
    out[:, 20:23], out[:, 24:] = hexes[:, 17:20], hexes[:, 20:32]
    out[:, [8, 13, 18, 23]] = _DASH
    out[:, 14] = ord("8" if clustered else "5")
    out[:, 19] = _VARIANT_OF[hexes[:, 16]]
    offsets = np.arange(0, 36 * n + 1, 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))
