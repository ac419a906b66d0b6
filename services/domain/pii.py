"""Personal data in an uploaded table: which string columns hold emails, card numbers, IBANs,
US SSNs or phone numbers, in how many records, with a few masked samples.

One RE2 pass (pyarrow.compute) over each string column finds the cells that could hold any
of them, so a clean column costs a single vectorized scan. Emails need no checksum and are
counted vectorized too; only candidate cells for the other types reach Python, where exact
patterns (with the look-arounds RE2 lacks) and checksums (Luhn, ISO 13616 mod-97) decide.

Within a cell each matched string counts for one type only, the first of iban, card_number,
ssn, phone that claims it: a valid card number or SSN is never also a phone number.
Non-string columns are skipped: an integer column of card numbers is not text a person typed.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

import pyarrow as pa
import pyarrow.compute as pc
import re2

# Checksums and masks are the detection engine's (services/domain/detectors): one code path.
from services.domain.detectors.validate import Span
from services.domain.detectors.validate import find_cards as _find_cards
from services.domain.detectors.validate import iban_ok as _iban_ok
from services.domain.detectors.validate import mask_card as _mask_card
from services.domain.detectors.validate import mask_email as _mask_email
from services.domain.detectors.validate import mask_iban as _mask_iban
from services.domain.detectors.validate import mask_phone as _mask_phone
from services.domain.detectors.validate import mask_ssn as _mask_ssn

MAX_SAMPLES = 3
EMAIL_SAMPLE_CELLS = 1000  # cells read for email samples; the count needs none of them


@dataclass(frozen=True)
class Kind:
    name: str
    prefilter: str  # RE2: matches in every cell that `find` finds something in (a superset)
    find: Callable[[str], list[Span]]
    mask: Callable[[str], str]


def _finder(pattern: str, valid: Callable[[str], bool] = lambda _: True) -> Callable[[str], list[Span]]:
    compiled = re.compile(pattern)
    return lambda cell: [m.span() for m in compiled.finditer(cell) if valid(m.group())]


_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_EMAIL_RE = re2.compile(_EMAIL)  # RE2: under re, 'a' * n + '@b@x.com' takes time quadratic in n

# Checked kinds, in the order they claim a matched string.
CHECKED = [
    Kind("iban", r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}",
         _finder(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", _iban_ok), _mask_iban),
    Kind("card_number", r"\d(?:[ -]?\d){12}", _find_cards, _mask_card),
    Kind("ssn", r"\d{3}-\d{2}-\d{4}",
         _finder(r"(?<![\d-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"), _mask_ssn),
    Kind("phone", r"\+[1-9]\d{7}|\d{3}[ .)-]+\d{3}[ .-]\d{4}",
         _finder(r"(?<![\w+])(?:\+[1-9]\d{7,14}(?!\d)"  # E.164
                 r"|(?:\+?1[ .-]?)?(?:\([2-9]\d\d\) ?|[2-9]\d\d[ .-])[2-9]\d\d[ .-]\d{4}(?!\d))"),  # NANP
         _mask_phone),
]
_ANY = "|".join(f"(?:{p})" for p in [_EMAIL, *(kind.prefilter for kind in CHECKED)])


def scan_pii(table: pa.Table) -> list[dict]:
    """One finding per (column, type) found: {column, type, count, samples}, where count is the
    number of records holding that type at least once and samples are up to 3 distinct masked
    values in order of first appearance. Sorted by column, then type."""
    findings = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            findings += _scan_column(name, column)
    return sorted(findings, key=lambda f: (f["column"], f["type"]))


def _scan_column(name: str, column: pa.ChunkedArray) -> list[dict]:
    candidates = column.filter(pc.match_substring_regex(column, _ANY))
    if len(candidates) == 0:
        return []
    found = [_emails(name, candidates)]
    masks = [pc.match_substring_regex(candidates, kind.prefilter) for kind in CHECKED]
    present = [kind for kind, mask in zip(CHECKED, masks, strict=True) if pc.any(mask).as_py()]
    if present:
        # Python sees each distinct value once (in order of first appearance), with its count.
        distinct = pc.value_counts(candidates.filter(reduce(pc.or_, masks)))
        found += _checked(name, distinct.field("values").to_pylist(), distinct.field("counts").to_pylist(), present)
    return [f for f in found if f]


def _emails(name: str, candidates: pa.ChunkedArray) -> dict | None:
    # The prefilter is the exact email pattern, so counting needs no Python at all.
    matching = candidates.filter(pc.match_substring_regex(candidates, _EMAIL))
    if len(matching) == 0:
        return None
    samples: list[str] = []
    for cell in matching.slice(0, EMAIL_SAMPLE_CELLS).to_pylist():
        _add_samples(samples, (_mask_email(m.group()) for m in _EMAIL_RE.finditer(cell)))
        if len(samples) == MAX_SAMPLES:
            break
    return _finding(name, "email", len(matching), samples)


def _checked(name: str, cells: list[str], repeats: list[int], kinds: list[Kind]) -> list[dict]:
    counts = {kind.name: 0 for kind in kinds}
    samples: dict[str, list[str]] = {kind.name: [] for kind in kinds}
    for cell, repeat in zip(cells, repeats, strict=True):
        claimed: list[Span] = []
        for kind in kinds:
            hits = [span for span in kind.find(cell) if not _overlaps(span, claimed)]
            if hits:
                counts[kind.name] += repeat
                claimed += hits
                _add_samples(samples[kind.name], (kind.mask(cell[a:b]) for a, b in hits))
    return [_finding(name, k, n, samples[k]) for k, n in counts.items() if n]


def _overlaps(span: Span, claimed: list[Span]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in claimed)


def _add_samples(samples: list[str], masked) -> None:
    """`masked` is lazy: once the samples are full nothing more is masked."""
    while len(samples) < MAX_SAMPLES:
        value = next(masked, None)
        if value is None:
            return
        if value not in samples:
            samples.append(value)


def _finding(column: str, kind: str, count: int, samples: list[str]) -> dict:
    return {"column": column, "type": kind, "count": count, "samples": samples}
