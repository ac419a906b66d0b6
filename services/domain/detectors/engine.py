"""The detection engine: string arrays in, findings out. Pure: the adapters decode files
(services/adapters/file_cells.py) into the arrays scanned here.

Per array of cells (a column of a batch) or lines (a slice of a text file):
1. the pieces of a batch (columns of many files, slices of lines) are concatenated, so the
   vectorized passes below run once per batch: pyarrow compiles a regex on every call, which
   costs more than scanning a small file;
2. one RE2 pass (google-re2) of the union of the catalog's prefilters over the batch's cells
   joined by newlines picks the cells that could hold anything (pyarrow's per-cell kernel
   spends more on each 20-odd byte cell than on its bytes); a workspace's own prefilters, which
   may match a newline or a cell's edges (^, \\A), run per cell (pyarrow.compute);
3. in Python, each candidate cell is offered to the detectors in catalog order (google-re2,
   compiled once); a string one detector claims is not offered to the next
   (see catalog.DETECTORS) whose own prefilter matched it (one more vectorized pass per
   detector, over the distinct candidate values only); a detector is told the spans those
   before it claimed, and skips validating what overlaps them.

A repeated cell value is validated once per batch (a column of the same few emails): the
candidates are dictionary-encoded, and only those whose value holds findings are visited again.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import re2

from services.domain.detectors.catalog import CUSTOM_FAMILY, DETECTORS, Detector
from services.domain.detectors.validate import allow_key, byte_spans

_PEM_END = r"-----END [A-Z0-9 ]*PRIVATE KEY"
_OPTIONS = re2.Options()
# No catalog prefilter matches a newline or depends on a cell's edges; never_nl makes sure of the
# first, so a match in cells joined by newlines is a match in one cell, as in that cell alone.
_OPTIONS.never_nl = True
_OPTIONS.never_capture = True
# The union (counted repetitions of several detectors) is a DFA of many states: in RE2's default
# 8 MiB its cache thrashes, and the pass runs at half speed.
_OPTIONS.max_mem = 64 << 20


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value. Tabular data: `row` (1-based record number) and `column` (a name,
    or a dotted path for nested JSON); text: `line` (1-based). `start`/`end` are character
    offsets of the value in that cell or line. `masked` never holds the raw value."""
    detector: str
    family: str
    confidence: float
    masked: str
    row: int | None = None
    column: str | None = None
    line: int | None = None
    start: int = 0
    end: int = 0

    def location(self) -> dict:
        if self.line is not None:
            return {"line": self.line}
        return {"row": self.row, "column": self.column}


@dataclass(frozen=True)
class Piece:
    """Strings to scan: a column's cells (`column` set; cell i is record `first + i`, or
    `rows[i]` when given: the items of a list column share their record's number) or lines of
    text (`column` None; line i is line `first + i`). `paths[i]`, when given, is cell i's own
    column: the items of a list each have their index in it (`team[2].mail`), so two items of
    one record are two places, never one finding."""
    column: str | None
    values: pa.Array
    first: int = 1
    rows: pa.Array | None = None
    paths: pa.Array | None = None


@dataclass
class LineState:
    """Carried from one slice of a text file to the next: inside a PEM private key block the
    base64 body lines are part of that finding, not high-entropy tokens of their own."""
    in_private_key: bool = False


@dataclass
class Engine:
    detectors: list[Detector] = field(default_factory=lambda: list(DETECTORS))
    allow: frozenset[str] = frozenset()  # a workspace's allow-list (validate.allow_key): never reported

    def __post_init__(self) -> None:
        self._any = _joined(tuple(d.prefilter for d in self.detectors if d.family != CUSTOM_FAMILY))
        self._per_cell = "|".join(f"(?:{d.prefilter})" for d in self.detectors if d.family == CUSTOM_FAMILY)

    def scan(self, pieces: list[Piece], states: list[LineState | None] | None = None) -> list[list[Finding]]:
        """Findings of each piece, in one batch. `states[i]` carries a text file's state from
        its previous slice to pieces[i] (a fresh one when None)."""
        found: list[list[Finding]] = [[] for _ in pieces]
        if not pieces:
            return found
        arrays = [_strings(p.values) for p in pieces]
        starts = np.cumsum([0] + [len(a) for a in arrays])
        values = pa.concat_arrays(arrays) if len(arrays) > 1 else arrays[0]
        marks: list[tuple[int, int]] = []  # (index, 1 for a BEGIN line / 0 for an END line)
        matches = list(self._matches(values, marks))
        owners = np.searchsorted(starts, [m[0] for m in matches], side="right") - 1 if matches else []
        inside = {}
        for k, piece in enumerate(pieces):
            if piece.column is None:
                state = states[k] if states is not None and states[k] is not None else LineState()
                mine = [(i - int(starts[k]), b) for i, b in marks if starts[k] <= i < starts[k + 1]]
                inside[k] = _private_key_bodies(mine, len(arrays[k]), state)
        row_of = {}
        for (i, detector, a, b, conf, text), k in zip(matches, owners, strict=True):
            if self.allow and allow_key(text) in self.allow:  # a test card, a shared mailbox: not a finding
                continue
            piece, offset = pieces[k], i - int(starts[k])
            masked = detector.mask(text)
            if piece.column is None:
                if detector.family == "private_key" or offset not in inside[k]:
                    found[k].append(Finding(detector.name, detector.family, conf, masked, line=piece.first + offset,
                                            start=a, end=b))
                continue
            if piece.rows is not None:
                if k not in row_of:
                    row_of[k] = piece.rows.to_numpy(zero_copy_only=False)
                row = int(row_of[k][offset])
            else:
                row = piece.first + offset
            column = piece.column if piece.paths is None else piece.paths[offset].as_py()
            found[k].append(Finding(detector.name, detector.family, conf, masked, row=row, column=column,
                                    start=a, end=b))
        return found

    def scan_cells(self, column: str, values: pa.Array | pa.ChunkedArray, first_row: int = 1,
                   rows: pa.Array | None = None) -> list[Finding]:
        """Cells of one column; cell i is record `first_row + i`, or `rows[i]` when given."""
        return self.scan([Piece(column, values, first_row, rows)])[0]

    def scan_lines(self, lines: pa.Array | pa.ChunkedArray, first_line: int = 1,
                   state: LineState | None = None) -> list[Finding]:
        """Lines of a text file; lines[i] is line `first_line + i`."""
        return self.scan([Piece(None, lines, first_line)], [state])[0]

    def scan_text(self, text: str) -> list[Finding]:
        return self.scan_lines(pa.array(text.split("\n"), pa.string()))

    # -- internals -----------------------------------------------------------------------------

    def _candidates(self, values: pa.Array) -> np.ndarray:
        """Indices of the cells a prefilter matches, ascending (a null cell is an empty line)."""
        filled = pc.fill_null(values, "") if values.null_count else values
        text = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(filled)], pa.int32()), filled), "\n")
        offsets = np.frombuffer(filled.buffers()[1], np.int32, len(filled) + 1, filled.offset * 4)
        # Where each cell starts in `text` (shorter than 2 GiB: a string scalar), in int32: half the
        # memory traffic of int64 over a batch's ~300,000 cells.
        starts = offsets[:-1] + np.arange(-offsets[0], len(values) - offsets[0], dtype=np.int32)
        # A cell may hold newlines (a JSON string): one more match in the same cell, unique() drops it.
        ends = np.array([b for _, b in byte_spans(self._any, _bytes_of_only(text))], np.int32)  # int64: copies starts
        index = np.unique(np.searchsorted(starts, ends, "right") - 1)
        if self._per_cell:
            hit = pc.indices_nonzero(pc.fill_null(pc.match_substring_regex(values, self._per_cell), False))
            index = np.union1d(index, hit.to_numpy().astype(np.int64))
        return index

    def _matches(self, values: pa.Array, marks: list[tuple[int, int]]):
        if len(values) == 0 or not self.detectors:
            return
        index = self._candidates(values)
        if len(index) == 0:
            return
        # Each distinct candidate value is validated once (a column of the same few emails): a
        # dictionary in C, where a Python dict cache cost a look-up per candidate.
        encoded = values.take(pa.array(index)).dictionary_encode()
        distinct, codes = encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)
        # Which detectors to try on which value: one vectorized pass each, over the distinct values;
        # a row of Python booleans per value, for compress().
        tried = np.column_stack([pc.fill_null(pc.match_substring_regex(distinct, d.prefilter), False)
                                 .to_numpy(zero_copy_only=False) for d in self.detectors]).tolist()
        cells = distinct.to_pylist()
        found = [self._validate(cell, compress(self.detectors, row)) for cell, row in zip(cells, tried, strict=True)]
        pem = [(("-----BEGIN " in cell) + 2 * ("-----END " in cell)) if "PRIVATE KEY" in cell else 0 for cell in cells]
        if any(pem):
            kinds = np.array(pem)[codes]
            marks += [(i, 1) for i in index[kinds & 1 != 0].tolist()] + [(i, 0) for i in index[kinds & 2 != 0].tolist()]
        for k in np.flatnonzero(np.array([bool(f) for f in found])[codes]).tolist():
            i = int(index[k])
            for detector, a, b, conf, text in found[codes[k]]:
                yield i, detector, a, b, conf, text

    @staticmethod
    def _validate(cell: str, detectors: Iterable[Detector]) -> list:
        claimed: list[tuple[int, int]] = []
        found = []
        for detector in detectors:
            for a, b, conf in detector.find(cell, claimed):
                if not any(a < end and start < b for start, end in claimed):
                    claimed.append((a, b))
                    found.append((detector, a, b, conf, cell[a:b]))
        return found


def _bytes_of_only(text: pa.Array) -> pa.Buffer:
    """The bytes of a one-value string array, without a copy: `text[0].as_buffer()` copied them all
    (pyarrow 26 makes the scalar from a std::string), 5% of the engine's time over a batch's join."""
    start, end = np.frombuffer(text.buffers()[1], np.int32, 2, text.offset * 4).tolist()
    return text.buffers()[2][start:end]


@functools.lru_cache(maxsize=16)
def _joined(prefilters: tuple[str, ...]) -> re2._Regexp:
    """The union of the catalog's prefilters, compiled once per process: RE2 builds its DFA state by
    state as the text needs them (0.1-0.3 s over the first tens of MB), so engines (one a chunk)
    share one. END lines of private key blocks are candidates too: they close a body (see scan).
    A match runs on to the end of its line: the next search starts on the next line (the rest of
    a candidate need not be searched), so each byte is read a bounded number of times."""
    return re2.compile("(?:" + "|".join(f"(?:{p})" for p in (*prefilters, _PEM_END)) + ")[^\n]*", _OPTIONS)


def _strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values if values.type == pa.string() else values.cast(pa.string())


def _private_key_bodies(marks: list[tuple[int, int]], count: int, state: LineState) -> set[int]:
    """Indices of the lines inside PEM private key blocks, from the BEGIN (1) and END (0) lines
    among the candidates (both pass the prefilter)."""
    if not marks and not state.in_private_key:
        return set()
    inside: set[int] = set()
    opened = 0 if state.in_private_key else None
    for i, is_begin in sorted(marks):
        if is_begin:
            opened = i + 1
        elif opened is not None:
            inside.update(range(opened, i + 1))
            opened = None
    if opened is not None:
        inside.update(range(opened, count))
    state.in_private_key = opened is not None
    return inside
