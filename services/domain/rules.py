"""Compliance rules: their model, and their vectorized evaluation over an Arrow table.

Everything here is pure: a table of one unit's records (plus "__row", each record's index in
the whole upload) goes in, a table of violations comes out. Work is done column-at-a-time
with pyarrow.compute; Python only loops over group results and violations.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.domain.vocabulary import Severity

ROW = "__row"

RuleType = Literal["threshold", "range", "required", "allowed_values", "blocked_values", "pattern",
                   "duplicate", "velocity", "structuring"]
Window = Literal["daily", "weekly", "monthly", "temporal_scale"]
Name = Field(min_length=1)

# The record a violation is about, besides its account: its mapped fields as text (null for a group's).
RECORD_FIELDS = ("transaction_id", "amount", "timestamp")

VIOLATION_SCHEMA = pa.schema([
    pa.field("row", pa.int64()),
    pa.field("account", pa.string()),
    pa.field("key", pa.string(), nullable=False),
    pa.field("value", pa.string()),
    pa.field("window", pa.string()),
    *(pa.field(f, pa.string()) for f in RECORD_FIELDS),
])


class RuleError(Exception):
    """A rule that cannot run on this data (missing column, bad types): a unit failure, not a crash."""


# --- params, one model per rule type ---------------------------------------------------------------

class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThresholdParams(_Params):
    field: str = Name
    op: Literal["gt", "gte", "lt", "lte", "eq", "ne"]
    value: int | float | str

    @field_validator("value")
    @classmethod
    def _a_number_to_order_by(cls, value, info):
        """gt/gte/lt/lte order numbers: "abc" would compare as text, so no amount would ever be over it and
        the rule would pass every record silently. eq/ne compare text too (an account id)."""
        if info.data.get("op") in ("gt", "gte", "lt", "lte") and isinstance(value, str) and _as_float(value) is None:
            raise ValueError(f"'{info.data['op']}' compares numbers: value must be a number, not {value!r}")
        return value


class RangeParams(_Params):
    field: str = Name
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_bound(self):
        if self.min is None and self.max is None:
            raise ValueError("range needs at least one of 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("range 'min' must not exceed 'max'")
        return self


class RequiredParams(_Params):
    field: str = Name


class ValuesParams(_Params):
    field: str = Name
    values: list[str | int | float | bool] = Field(min_length=1)


class PatternParams(_Params):
    field: str = Name
    regex: str = Field(min_length=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return regex


class DuplicateParams(_Params):
    fields: list[str] = Field(min_length=1)


class VelocityParams(_Params):
    group_by: str = Name
    window: Window
    max_count: int | None = Field(default=None, ge=0)
    max_sum: float | None = None
    field: str = Field(default="amount", min_length=1)

    @model_validator(mode="after")
    def _a_limit(self):
        if self.max_count is None and self.max_sum is None:
            raise ValueError("velocity needs at least one of 'max_count' and 'max_sum'")
        return self


class StructuringParams(_Params):
    group_by: str = Name
    lower: float
    upper: float
    min_count: int = Field(ge=1)
    window: Window
    field: str = Field(default="amount", min_length=1)

    @model_validator(mode="after")
    def _a_band(self):
        if self.lower >= self.upper:
            raise ValueError("structuring 'lower' must be below 'upper'")
        return self


PARAMS: dict[str, type[_Params]] = {
    "threshold": ThresholdParams, "range": RangeParams, "required": RequiredParams,
    "allowed_values": ValuesParams, "blocked_values": ValuesParams, "pattern": PatternParams,
    "duplicate": DuplicateParams, "velocity": VelocityParams, "structuring": StructuringParams,
}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Name
    name: str
    type: RuleType
    severity: Severity
    active: bool = True
    params: dict[str, Any]

    @model_validator(mode="after")
    def _check_params(self):
        try:
            spec = PARAMS[self.type].model_validate(self.params)
        except ValidationError as exc:
            # Re-raised with locations under "params", so API clients see e.g. params.op.
            raise ValidationError.from_exception_data("Rule", [
                {"type": e["type"], "loc": ("params", *e["loc"]), "input": e["input"],
                 **({"ctx": e["ctx"]} if "ctx" in e else {})}
                for e in exc.errors()]) from None
        # Stored normalized (defaults filled, nulls dropped), so the ledger snapshot is explicit.
        self.params = spec.model_dump(exclude_none=True)
        return self

    @property
    def spec(self) -> Any:
        return PARAMS[self.type].model_validate(self.params)


def parse_rule(raw: dict) -> Rule:
    return Rule.model_validate(raw)


# --- columns -----------------------------------------------------------------------------------------

def resolve_column(field: str, mapping: dict[str, str]) -> str:
    """A canonical field through the mapping; anything else is taken as a raw upload column."""
    return mapping.get(field, field)


def partition_key(rule: Rule, mapping: dict[str, str]) -> tuple[str, ...]:
    """Upload columns whose equal values must share a unit for this rule to be exact."""
    spec = rule.spec
    if rule.type == "duplicate":
        return tuple(dict.fromkeys(resolve_column(f, mapping) for f in spec.fields))
    if rule.type in ("velocity", "structuring"):
        return (resolve_column(spec.group_by, mapping),)
    return ()


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _column(table: pa.Table, field: str, mapping: dict[str, str]) -> tuple[str, pa.ChunkedArray]:
    name = resolve_column(field, mapping)
    if name not in table.column_names:
        raise RuleError(f"column '{name}' not found")
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if _is_text(col.type) and not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    return name, col


def _all(masks: list) -> Any:
    return functools.reduce(pc.and_, masks)


def _any(masks: list) -> Any:
    return functools.reduce(pc.or_, masks)


def _first_failure(values: pa.ChunkedArray | pa.Array, works: Callable[[Any], object]) -> Any:
    """One value on which `works` raises, found by bisection: O(n) in all, only on the error path."""
    values = values.drop_null()
    while len(values) > 1:
        half = len(values) // 2
        try:
            works(values[:half])
            values = values[half:]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = values[:half]
    return values[0].as_py() if len(values) else None


def _text(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise RuleError(f"column '{name}' of type {col.type} cannot be read as text") from None


def _numbers(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """The column as float64; numbers held as strings are parsed, blank strings count as null."""
    if _is_number(col.type):
        return col.cast(pa.float64())
    if not _is_text(col.type):
        raise RuleError(f"column '{name}' of type {col.type} is not numeric")
    trimmed = pc.utf8_trim_whitespace(col)
    trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    try:
        return trimmed.cast(pa.float64())
    except pa.ArrowInvalid:
        bad = _first_failure(trimmed, lambda v: v.cast(pa.float64()))
        raise RuleError(f"column '{name}' is not numeric: cannot read '{bad}' as a number") from None


def _amounts(col: pa.ChunkedArray, name: str) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """The column as float64 where a value reads as a number, and which non-blank values do not (None: all
    do). Text as exports write amounts reads too: a currency symbol or code before or after ($9,500.00,
    9500 EUR) and comma thousands separators (12,345.67). A value that still does not read is not a
    number the rule can judge: it is left out of the rule and counted (the rule's unevaluated)."""
    if _is_number(col.type):
        return col.cast(pa.float64()), None
    if not _is_text(col.type):
        raise RuleError(f"column '{name}' of type {col.type} is not numeric")
    text = _amount_text(col)
    numeric = pc.fill_null(pc.match_substring_regex(text, NUMBER_TEXT), False)
    present = pc.fill_null(pc.not_equal(text, ""), False)
    values = pc.if_else(numeric, text, pa.scalar(None, pa.string())).cast(pa.float64())
    unread = pc.and_(present, pc.invert(numeric))
    return values, _unread_or_fail(col, unread, present, name, "a number")


def _unread_or_fail(col: pa.ChunkedArray, unread: pa.ChunkedArray, present: pa.ChunkedArray, name: str,
                    what: str) -> pa.ChunkedArray | None:
    """The unread mask (None when every value reads); a column none of whose values reads is not of that
    type at all: the rule fails visibly, naming a value, rather than pass on nothing it could judge."""
    if not pc.any(unread).as_py():
        return None
    if pc.sum(unread).as_py() == pc.sum(present).as_py():
        raise RuleError(f"column '{name}' is not {what}: cannot read '{pc.filter(col, unread)[0].as_py()}'"
                        f" as {what}")
    return unread


def _amount_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """An amount's text as a plain number would be written: trimmed, no currency, no comma thousands."""
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(col.cast(pa.string())), _CURRENCY, "")
    thousands = pc.fill_null(pc.match_substring_regex(text, _THOUSANDS), False)
    return pc.if_else(thousands, pc.replace_substring(text, ",", ""), text)


_CURRENCY = r"^[$€£¥]\s*|\s*[$€£¥]$|^[A-Z]{3}\s+|\s+[A-Z]{3}$"
_THOUSANDS = r"^[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?$"


def parsed_numbers(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A text column as float64 if every non-blank value reads as a number, else None: CSV
    uploads are text, and this is the inference a rule makes where a number is wanted."""
    if not _is_text(col.type):
        return col.cast(pa.float64()) if _is_number(col.type) else None
    try:
        return _numbers(col.cast(pa.string()), "")
    except RuleError:
        return None


NUMBER_TEXT = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


def _numbers_where_they_read(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """float64 for the values that read as numbers, null for the rest."""
    numeric = pc.fill_null(pc.match_substring_regex(text, NUMBER_TEXT), False)
    return pc.if_else(numeric, text, pa.scalar(None, pa.string())).cast(pa.float64())


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- timestamps and windows ---------------------------------------------------------------------------

_DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"
_ZONED = r"(Z|[+-]\d{2}(:?\d{2})?)$"


def _parse_utc(strings: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """ISO 8601 strings as naive UTC timestamps. Arrow parses a zone only into a zoned type, so
    every string is made zoned first: dates get midnight, unzoned times are taken as UTC."""
    s = pc.utf8_trim_whitespace(strings)
    s = pc.if_else(pc.match_substring_regex(s, _DATE_ONLY), pc.binary_join_element_wise(s, "T00:00:00", ""), s)
    s = pc.if_else(pc.match_substring_regex(s, _ZONED), s, pc.binary_join_element_wise(s, "Z", ""))
    return s.cast(pa.timestamp("us", "UTC")).cast(pa.timestamp("us"))


def _utc_timestamps(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_timestamp(t):
        return col.cast(pa.timestamp(t.unit))  # zoned values are stored as UTC already
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("s"))
    if not pa.types.is_string(t):
        raise RuleError(f"column '{name}' of type {t} is not a timestamp")
    try:
        return _parse_utc(col)
    except pa.ArrowInvalid:
        bad = _first_failure(col, _parse_utc)
        raise RuleError(f"column '{name}' has a value that is not an ISO 8601 timestamp: '{bad}'") from None


def _zoned_iso(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The usual column fast (an export's times, all ISO 8601 with a zone): one regex pass and one cast,
    where the general path below trims, classifies and rewrites every value first (five passes). Exactly
    what that path gives such a column; None for any other column, which takes that path."""
    if pc.all(pc.match_substring_regex(col, ISO_TEXT)).as_py() is False:
        return None
    try:
        return col.cast(pa.timestamp("us", "UTC")).cast(pa.timestamp("us"))
    except pa.ArrowInvalid:  # an unzoned time or a bare date: the general path completes it
        return None


_PARSED: OrderedDict[tuple, tuple[pa.ChunkedArray, tuple]] = OrderedDict()
_PARSED_KEEP = 4  # a unit's windowed rules run one after another; two evaluator threads
_PARSED_LOCK = threading.Lock()


def _timestamps(col: pa.ChunkedArray, name: str) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """_parsed_timestamps of the column, parsed once: a unit's velocity and structuring rules read the same
    column (its parse was 0.17 s of a 1M-record scan's). Kept by the column's buffers (address, offset,
    length of each); each entry holds its column, so those buffers cannot be freed and their addresses
    reused while it is kept."""
    key = tuple((c.offset, len(c), *(b.address if b is not None else 0 for b in c.buffers())) for c in col.chunks)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
    if hit is not None:
        return hit[1]
    parsed = _parsed_timestamps(col, name)
    with _PARSED_LOCK:
        _PARSED[key] = (col, parsed)
        while len(_PARSED) > _PARSED_KEEP:
            _PARSED.popitem(last=False)
    return parsed


def _parsed_timestamps(col: pa.ChunkedArray, name: str) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """As _utc_timestamps, with the text values that are not ISO 8601 times left null and marked (None: none
    is): a record whose time does not read is left out of a windowed rule and counted as unevaluated."""
    if not _is_text(col.type):
        return _utc_timestamps(col, name), None
    zoned = _zoned_iso(col)
    return (zoned, None) if zoned is not None else _text_timestamps(col, name)


def _text_timestamps(col: pa.ChunkedArray, name: str) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """Any text column's times: trimmed, dates at midnight, unzoned times as UTC, the rest marked unread."""
    text = pc.utf8_trim_whitespace(col.cast(pa.string()))
    iso = pc.fill_null(pc.match_substring_regex(text, ISO_TEXT), False)
    present = pc.fill_null(pc.not_equal(text, ""), False)
    unread = pc.and_(present, pc.invert(iso))
    try:
        times = _parse_utc(pc.if_else(iso, text, pa.scalar(None, pa.string())))
    except pa.ArrowInvalid:  # shaped like ISO 8601 but not a time (2024-13-45): the strict path names it
        return _utc_timestamps(col, name), None
    return times, _unread_or_fail(col, unread, present, name, "an ISO 8601 timestamp")


def _window_keys(ts: pa.ChunkedArray, window: str) -> pa.ChunkedArray:
    """An integer per record naming its window: days since epoch, ISO year*100+week, year*100+month."""
    if window == "daily":
        return ts.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
    if window == "weekly":
        return pc.add(pc.multiply(pc.iso_year(ts), 100), pc.iso_week(ts))
    return pc.add(pc.multiply(pc.year(ts), 100), pc.month(ts))


def _window_label(key: int, window: str) -> str:
    if window == "daily":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=key)).isoformat()
    if window == "weekly":
        return f"{key // 100}-W{key % 100:02d}"
    return f"{key // 100}-{key % 100:02d}"


def _window(spec_window: str, temporal_scale: str | None) -> str:
    window = (temporal_scale or "daily") if spec_window == "temporal_scale" else spec_window
    if window not in ("daily", "weekly", "monthly"):
        raise RuleError(f"unknown temporal scale '{window}'")
    return window


# --- results ------------------------------------------------------------------------------------------

def empty_violations() -> pa.Table:
    return VIOLATION_SCHEMA.empty_table()


def _record_violations(table: pa.Table, mapping: dict[str, str], positions: Any, values: Any) -> pa.Table:
    """One violation per record at `positions` of `table` (aligned with `values`), sorted by row, with the
    record's account and mapped fields."""
    rows = pc.take(table.column(ROW), positions).cast(pa.int64())
    fields = [_mapped_text(table, mapping, name, positions) for name in ("account", *RECORD_FIELDS)]
    return pa.table([rows, fields[0], rows.cast(pa.string()), values.cast(pa.string()),
                     pa.nulls(len(rows), pa.string()), *fields[1:]], schema=VIOLATION_SCHEMA).sort_by("row")


def _mapped_text(table: pa.Table, mapping: dict[str, str], target: str, positions: Any) -> Any:
    """The records' values of a mapped field as text (nulls when it is not mapped or not in the upload)."""
    name = mapping.get(target)
    if name is None or name not in table.column_names:
        return pa.nulls(len(positions), pa.string())
    return pc.take(table.column(name), positions).cast(pa.string())


def _where(table: pa.Table, mapping: dict[str, str], mask: pa.ChunkedArray, values: pa.ChunkedArray) -> pa.Table:
    """Record-rule violations from a per-record mask; a null in the mask (null value) is no violation."""
    positions = pc.indices_nonzero(pc.fill_null(mask, False))
    return _record_violations(table, mapping, positions, pc.take(values, positions))


# --- record rules -------------------------------------------------------------------------------------

_OPS = {"gt": pc.greater, "gte": pc.greater_equal, "lt": pc.less, "lte": pc.less_equal,
        "eq": pc.equal, "ne": pc.not_equal}


def _threshold(table, spec: ThresholdParams, mapping, _scale) -> pa.Table:
    name, col = _column(table, spec.field, mapping)
    value = spec.value
    # A number compares numerically, and so does any value of gt/gte/lt/lte (a column whose cells do not
    # all read as numbers fails the rule, naming a cell: "$9,500" > "10000" as text would pass silently);
    # an eq/ne string compares as text unless it is a number and the column's values all read as numbers.
    if not isinstance(value, str) or spec.op not in ("eq", "ne"):
        numbers, unread = _amounts(col, name)
        return _where(table, mapping, _OPS[spec.op](numbers, _as_float(value)), col), unread
    if _as_float(value) is not None and (numbers := parsed_numbers(col)) is not None:
        mask = _OPS[spec.op](numbers, _as_float(value))
    else:
        mask = _OPS[spec.op](_text(col, name), value)
    return _where(table, mapping, mask, col)


def _range(table, spec: RangeParams, mapping, _scale) -> tuple[pa.Table, pa.ChunkedArray | None]:
    name, col = _column(table, spec.field, mapping)
    numbers, unread = _amounts(col, name)
    outside = []
    if spec.min is not None:
        outside.append(pc.less(numbers, spec.min))
    if spec.max is not None:
        outside.append(pc.greater(numbers, spec.max))
    return _where(table, mapping, _any(outside), col), unread


def _required(table, spec: RequiredParams, mapping, _scale) -> pa.Table:
    _, col = _column(table, spec.field, mapping)
    missing = pc.is_null(col)
    if pa.types.is_string(col.type):
        missing = pc.or_(missing, pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), False))
    return _where(table, mapping, missing, col)


def _membership(table, spec: ValuesParams, mapping) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Whether each value is among spec.values (null for null values), and the column itself."""
    name, col = _column(table, spec.field, mapping)
    if _is_number(col.type):
        wanted = [f for f in map(_as_float, spec.values) if f is not None]  # text can never equal a number
        found = pc.is_in(col.cast(pa.float64()), value_set=pa.array(wanted, pa.float64()))
    else:
        text = _text(col, name)
        wanted = [str(v).lower() if isinstance(v, bool) else str(v) for v in spec.values]  # Arrow: "true"
        found = pc.is_in(text, value_set=pa.array(wanted, pa.string()))
        numbers = [float(v) for v in spec.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:  # a number in the rule also matches text that reads as it ("1.50" is 1.5)
            same = pc.is_in(_numbers_where_they_read(text), value_set=pa.array(numbers, pa.float64()))
            found = pc.or_(found, pc.fill_null(same, False))
    return pc.if_else(pc.is_null(col), pa.scalar(None, pa.bool_()), found), col


def _allowed_values(table, spec: ValuesParams, mapping, _scale) -> pa.Table:
    found, col = _membership(table, spec, mapping)
    return _where(table, mapping, pc.invert(found), col)


def _blocked_values(table, spec: ValuesParams, mapping, _scale) -> pa.Table:
    found, col = _membership(table, spec, mapping)
    return _where(table, mapping, found, col)


def _pattern(table, spec: PatternParams, mapping, _scale) -> pa.Table:
    name, col = _column(table, spec.field, mapping)
    try:
        matches = pc.match_substring_regex(_text(col, name), spec.regex)
    except pa.ArrowInvalid as exc:  # valid for Python's re, not for RE2 (e.g. lookarounds)
        raise RuleError(f"regular expression not supported: {exc}") from None
    return _where(table, mapping, pc.invert(matches), col)


# --- cross-record rules -------------------------------------------------------------------------------

def _duplicate(table, spec: DuplicateParams, mapping, _scale) -> pa.Table:
    fields = list(dict.fromkeys(spec.fields))
    keys = [_column(table, f, mapping)[1] for f in fields]
    names = [f"k{i}" for i in range(len(keys))]
    # Each key as the integer code of its value (one hash pass), so the sort below orders integers, not
    # text; equal codes are equal values. Order of the codes is irrelevant: only equality is asked.
    codes = [pc.dictionary_encode(k.combine_chunks()).indices for k in keys]
    sub = pa.table(dict(zip(names, codes, strict=True)) | {"row": table.column(ROW),
                                                           "at": np.arange(table.num_rows, dtype=np.int64)})
    complete = _all([pc.is_valid(k) for k in keys])
    sub = sub.filter(complete).sort_by([(n, "ascending") for n in names] + [("row", "ascending")])
    if sub.num_rows < 2:
        return empty_violations()
    # Sorted by key then row, a record is a duplicate when its key equals its predecessor's.
    same = _all([pc.equal(sub[n].slice(1), sub[n].slice(0, sub.num_rows - 1)) for n in names])
    dup = pa.chunked_array([pa.array([False]), *same.chunks], pa.bool_())
    at = sub.filter(dup)["at"]
    texts = [_text(pc.take(k, at), f) for k, f in zip(keys, fields, strict=True)]
    values = texts[0] if len(texts) == 1 else pc.binary_join_element_wise(*texts, "|")
    return _record_violations(table, mapping, at, values)


def _grouped(table, mapping, group_by: str, field: str, window: str, band: tuple[float, float] | None
             ) -> tuple[pa.Table, pa.ChunkedArray | None]:
    """Per (group, window): group value as text, window key, record count and amount sum; and the records
    whose amount or time does not read (left out, counted as unevaluated). Records with a null group or
    timestamp are left out; with a band, only amounts inside it count."""
    _, group = _column(table, group_by, mapping)
    ts_name, ts = _column(table, "timestamp", mapping)
    amount_name, amount = _column(table, field, mapping)
    times, bad_times = _timestamps(ts, ts_name)
    amounts, bad_amounts = _amounts(amount, amount_name)
    sub = pa.table({"g": group, "w": _window_keys(times, window), "a": amounts})
    unread = [m for m in (bad_times, bad_amounts) if m is not None]
    keep = pc.and_(pc.is_valid(sub["g"]), pc.is_valid(sub["w"]))
    if unread:  # left out whole: neither its count nor its sum is known to be right
        keep = pc.and_(keep, pc.invert(_any(unread)))
    if band is not None:
        keep = pc.and_(keep, pc.and_(pc.greater_equal(sub["a"], band[0]), pc.less(sub["a"], band[1])))
    agg = sub.filter(pc.fill_null(keep, False)).group_by(["g", "w"]).aggregate([("a", "sum"), ([], "count_all")])
    return (pa.table({"g": _text(agg["g"], group_by), "w": agg["w"], "count": agg["count_all"],
                      "sum": pc.fill_null(agg["a_sum"], 0.0)}), _any(unread) if unread else None)


def _group_violations(agg: pa.Table, mask: Any, window: str) -> pa.Table:
    """One violation per flagged (group, window), sorted by group then window label (a window key sorts
    as its label does), built column-wise: a velocity rule can flag a group per account and day."""
    hits = agg.filter(mask).sort_by([("g", "ascending"), ("w", "ascending")])
    labels = _window_labels(hits["w"], window)
    nulls = pa.nulls(hits.num_rows, pa.string())
    return pa.Table.from_arrays([
        pa.nulls(hits.num_rows, pa.int64()),
        hits["g"],
        pc.binary_join_element_wise(hits["g"], labels, "|"),
        # two decimals as Python writes them (Arrow's float-to-text keeps the shortest form)
        pa.array([f"count={n} sum={s:.2f}" for n, s in zip(hits["count"].to_pylist(), hits["sum"].to_pylist(),
                                                            strict=True)], pa.string()),
        labels,
        *(nulls for _ in RECORD_FIELDS),  # a group's, not one record's
    ], schema=VIOLATION_SCHEMA)


def _window_labels(keys: pa.ChunkedArray, window: str) -> pa.ChunkedArray:
    """_window_label of every key, column-wise."""
    if window == "daily":
        return keys.cast(pa.int32()).cast(pa.date32()).cast(pa.string())
    year = pc.divide(keys, 100).cast(pa.string())
    part = pc.utf8_lpad(pc.subtract(keys, pc.multiply(pc.divide(keys, 100), 100)).cast(pa.string()), 2, "0")
    return pc.binary_join_element_wise(year, "-W" if window == "weekly" else "-", part, "")


def _velocity(table, spec: VelocityParams, mapping, scale) -> tuple[pa.Table, pa.ChunkedArray | None]:
    window = _window(spec.window, scale)
    agg, unread = _grouped(table, mapping, spec.group_by, spec.field, window, None)
    over = []
    if spec.max_count is not None:
        over.append(pc.greater(agg["count"], spec.max_count))
    if spec.max_sum is not None:
        over.append(pc.greater(agg["sum"], spec.max_sum))
    return _group_violations(agg, _any(over), window), unread


def _structuring(table, spec: StructuringParams, mapping, scale) -> tuple[pa.Table, pa.ChunkedArray | None]:
    window = _window(spec.window, scale)
    agg, unread = _grouped(table, mapping, spec.group_by, spec.field, window, (spec.lower, spec.upper))
    return _group_violations(agg, pc.greater_equal(agg["count"], spec.min_count), window), unread


_EVALUATORS = {
    "threshold": _threshold, "range": _range, "required": _required, "allowed_values": _allowed_values,
    "blocked_values": _blocked_values, "pattern": _pattern, "duplicate": _duplicate,
    "velocity": _velocity, "structuring": _structuring,
}


UNREAD_SAMPLES = 5  # record indexes of a rule's unevaluated records shown


@dataclass(frozen=True)
class Unevaluated:
    """Records a rule could not judge (a value that does not read as a number or a time): left out of the
    rule, counted, a few of their record indexes kept, as Great Expectations' unexpected_count."""
    count: int
    rows: list[int]


def evaluate(table: pa.Table, rule: Rule, mapping: dict[str, str], temporal_scale: str | None) -> pa.Table:
    """The rule's violations in `table`, as a VIOLATION_SCHEMA table. Raises RuleError if it cannot run."""
    return evaluate_counted(table, rule, mapping, temporal_scale)[0]


def evaluate_counted(table: pa.Table, rule: Rule, mapping: dict[str, str], temporal_scale: str | None
                     ) -> tuple[pa.Table, Unevaluated | None]:
    """The rule's violations, and the records it could not evaluate (None: it judged every one)."""
    if ROW not in table.column_names:
        raise RuleError(f"column '{ROW}' not found")
    try:
        result = _EVALUATORS[rule.type](table, rule.spec, mapping, temporal_scale)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        # Column types no rule anticipated (lists, structs, ...): the data's problem, not a crash.
        raise RuleError(f"cannot evaluate on this data: {exc}") from None
    violations, unread = result if isinstance(result, tuple) else (result, None)
    if unread is None:
        return violations, None
    rows = pc.filter(table.column(ROW), unread)
    return violations, Unevaluated(len(rows), rows.slice(0, UNREAD_SAMPLES).to_pylist())


# --- a mapping, checked when it is confirmed --------------------------------------------------------

# The canonical fields a mapping may name, and what a rule reads each as (README "Rules").
MAPPING_TARGETS = {"amount": "number", "account": "text", "timestamp": "timestamp", "transaction_id": "text",
                   "currency": "text", "counterparty": "text", "description": "text"}


def mapping_warnings(mapping: dict[str, str], sample: pa.Table) -> list[dict]:
    """Mapped columns whose values (in `sample`, the upload's first rows) do not read as what their target
    is read as: the rules on that field would fail on them. [{path, message}], said before any scan runs."""
    out = []
    for target, column in mapping.items():
        kind = MAPPING_TARGETS.get(target)
        if kind not in ("number", "timestamp") or column not in sample.column_names:
            continue
        bad = _unreadable(sample.column(column), kind)
        if bad:
            count, example = bad
            out.append({"path": ["mapping", target], "message": (
                f"column '{column}': {count} of the first {sample.num_rows:,} values do not read as a {kind}"
                f" (e.g. '{example}'); rules on {target} fail on them")})
    return out


def _unreadable(col: pa.ChunkedArray, kind: str) -> tuple[int, str] | None:
    """How many non-blank values of a text column do not read as a number or a timestamp, and one of them."""
    if not _is_text(col.type):
        return None
    text = _amount_text(col) if kind == "number" else pc.utf8_trim_whitespace(col.cast(pa.string()))
    present = pc.and_(pc.is_valid(text), pc.not_equal(text, ""))
    fine = pc.fill_null(pc.match_substring_regex(text, NUMBER_TEXT if kind == "number" else ISO_TEXT), False)
    failing = pc.and_(present, pc.invert(fine))
    count = pc.sum(failing).as_py() or 0
    return (count, pc.filter(text, failing)[0].as_py()) if count else None


# what _parse_utc reads: a date, or a date and time (T or a space), seconds and fractions optional, a zone
ISO_TEXT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
