"""The detection engine: string arrays in, findings out. Pure: the adapters decode files
(services/adapters/file_cells.py) into the arrays scanned here.

Per array of cells (a column of a batch) or lines (a slice of a text file):
1. one RE2 pass (pyarrow.compute) with the union of every detector's prefilter picks the cells
   that could hold anything; a clean column costs that single vectorized scan;
2. over those candidates only, one RE2 pass per detector says which detectors to try on which
   cell;
3. in Python, each candidate cell is offered to its detectors in catalog order; a string one
   detector claims is not offered to the next (see catalog.DETECTORS).

A repeated cell value is validated once per call (a column of the same few emails).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from services.domain.detectors.catalog import DETECTORS, Detector

_PEM_BEGIN = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY"
_PEM_END = r"-----END [A-Z0-9 ]*PRIVATE KEY"
_CACHE_LIMIT = 4096


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


@dataclass
class LineState:
    """Carried from one slice of a text file to the next: inside a PEM private key block the
    base64 body lines are part of that finding, not high-entropy tokens of their own."""
    in_private_key: bool = False


Match = tuple[int, Detector, int, int, float]  # index in the array, detector, start, end, confidence


@dataclass
class Engine:
    detectors: list[Detector] = field(default_factory=lambda: list(DETECTORS))

    def __post_init__(self) -> None:
        self._any = "|".join(f"(?:{d.prefilter})" for d in self.detectors)

    @property
    def families(self) -> list[str]:
        return sorted({d.family for d in self.detectors})

    def scan_cells(self, column: str, values: pa.Array | pa.ChunkedArray, first_row: int = 1,
                   rows: pa.Array | None = None) -> list[Finding]:
        """Cells of one column; cell i is record `first_row + i`, or `rows[i]` when given (the
        items of a list column share their record's number)."""
        row_of = rows.to_numpy(zero_copy_only=False) if rows is not None else None
        return [Finding(d.name, d.family, conf, d.mask(text), column=column, start=a, end=b,
                        row=int(row_of[i]) if row_of is not None else first_row + i)
                for i, d, a, b, conf, text in self._matches(values)]

    def scan_lines(self, lines: pa.Array | pa.ChunkedArray, first_line: int = 1,
                   state: LineState | None = None) -> list[Finding]:
        """Lines of a text file; lines[i] is line `first_line + i`."""
        state = state if state is not None else LineState()
        inside = self._private_key_bodies(lines, state)
        return [Finding(d.name, d.family, conf, d.mask(text), line=first_line + i, start=a, end=b)
                for i, d, a, b, conf, text in self._matches(lines)
                if d.family == "private_key" or i not in inside]

    def scan_text(self, text: str) -> list[Finding]:
        return self.scan_lines(pa.array(text.split("\n"), pa.string()))

    # -- internals -----------------------------------------------------------------------------

    def _matches(self, values: pa.Array | pa.ChunkedArray):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
        if len(values) == 0:
            return
        index = pc.indices_nonzero(pc.fill_null(pc.match_substring_regex(values, self._any), False))
        if len(index) == 0:
            return
        candidates = values.take(index)
        tried = []
        for detector in self.detectors:
            hit = pc.fill_null(pc.match_substring_regex(candidates, detector.prefilter), False)
            if pc.any(hit).as_py():
                tried.append((detector, hit.to_numpy(zero_copy_only=False)))
        cache: dict[str, list] = {}
        for k, (i, cell) in enumerate(zip(index.to_pylist(), candidates.to_pylist(), strict=True)):
            found = cache.get(cell)
            if found is None:
                found = self._validate(cell, [d for d, hit in tried if hit[k]])
                if len(cache) < _CACHE_LIMIT:
                    cache[cell] = found
            for detector, a, b, conf, text in found:
                yield i, detector, a, b, conf, text

    @staticmethod
    def _validate(cell: str, detectors: list[Detector]) -> list:
        claimed: list[tuple[int, int]] = []
        found = []
        for detector in detectors:
            for a, b, conf in detector.find(cell):
                if not any(a < end and start < b for start, end in claimed):
                    claimed.append((a, b))
                    found.append((detector, a, b, conf, cell[a:b]))
        return found

    @staticmethod
    def _private_key_bodies(lines: pa.Array | pa.ChunkedArray, state: LineState) -> set[int]:
        begins = pc.indices_nonzero(pc.fill_null(pc.match_substring_regex(lines, _PEM_BEGIN), False)).to_pylist()
        ends = pc.indices_nonzero(pc.fill_null(pc.match_substring_regex(lines, _PEM_END), False)).to_pylist()
        if not begins and not ends and not state.in_private_key:
            return set()
        marks = sorted([(i, 1) for i in begins] + [(i, 0) for i in ends])
        inside: set[int] = set()
        opened = 0 if state.in_private_key else None
        for i, is_begin in marks:
            if is_begin:
                opened = i + 1
            elif opened is not None:
                inside.update(range(opened, i + 1))
                opened = None
        if opened is not None:
            inside.update(range(opened, len(lines)))
        state.in_private_key = opened is not None
        return inside
