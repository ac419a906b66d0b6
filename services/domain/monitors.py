"""Data-quality monitors: one check over a whole asset (an Arrow table), vectorized.

A monitor that finds a problem gives one anomaly; a monitor that cannot run on the data
(a missing column, a column of the wrong type) raises MonitorError, which the scan records
as that monitor `failed` with the message, never as a crash.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.domain.rules import ISO_TEXT, NUMBER_TEXT
from services.domain.vocabulary import Severity

MONITOR_TYPES = ("record_count", "null_rate", "uniqueness", "freshness", "value_range", "allowed_values",
                 "pattern", "schema")
SCHEMA_TYPES = ("string", "integer", "float", "boolean", "timestamp", "date", "any")


class MonitorError(Exception):
    """The monitor cannot run on this data."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Bounded(_Params):
    """min and/or max, in order."""
    @model_validator(mode="after")
    def _bounds(self):
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class RecordCountParams(_Bounded):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class NullRateParams(_Params):
    column: str = Field(min_length=1)
    max: float = Field(ge=0, le=1)


class UniquenessParams(_Params):
    columns: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_column(cls, data):
        if isinstance(data, dict) and "column" in data and "columns" not in data:
            data = {**data, "columns": [data["column"]]}
            data.pop("column")
        return data


MAX_AGE = re.compile(r"^(\d+)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class FreshnessParams(_Params):
    column: str = Field(min_length=1)
    max_age: str | int = Field(description='"30m", "24h", "7d", or seconds')

    @field_validator("max_age")
    @classmethod
    def _age(cls, value):
        if isinstance(value, int):
            if value <= 0:
                raise ValueError("max_age must be positive")
            return value
        if not MAX_AGE.match(value.strip()):
            raise ValueError('max_age is a number of seconds or like "30m", "24h", "7d"')
        return value.strip()

    def age(self) -> timedelta:
        if isinstance(self.max_age, int):
            return timedelta(seconds=self.max_age)
        n, unit = MAX_AGE.match(self.max_age).groups()
        return timedelta(**{UNITS[unit]: int(n)})


class ValueRangeParams(_Bounded):
    column: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None


class AllowedValuesParams(_Params):
    column: str = Field(min_length=1)
    values: list[Any] = Field(min_length=1)


class PatternParams(_Params):
    column: str = Field(min_length=1)
    regex: str = Field(min_length=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return value


class SchemaParams(_Params):
    columns: dict[str, Literal["string", "integer", "float", "boolean", "timestamp", "date", "any"]] = Field(
        min_length=1)


PARAMS: dict[str, type[_Params]] = {
    "record_count": RecordCountParams, "null_rate": NullRateParams, "uniqueness": UniquenessParams,
    "freshness": FreshnessParams, "value_range": ValueRangeParams, "allowed_values": AllowedValuesParams,
    "pattern": PatternParams, "schema": SchemaParams,
}


class Monitor(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    name: str = Field(min_length=1)
    type: Literal["record_count", "null_rate", "uniqueness", "freshness", "value_range", "allowed_values",
                  "pattern", "schema"]
    severity: Severity = "medium"
    enabled: bool = True
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _valid_params(self):
        try:
            self.params = PARAMS[self.type].model_validate(self.params).model_dump()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or self.type}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"invalid params for {self.type}: {problems}") from None
        return self

    def spec(self) -> Any:
        return PARAMS[self.type].model_validate(self.params)


def parse_monitor(raw: dict) -> Monitor:
    """Raises pydantic's ValidationError (a ValueError) with the field and the reason."""
    return Monitor.model_validate(raw)


@dataclass
class Anomaly:
    monitor_id: str
    monitor_name: str
    monitor_type: str
    severity: str
    message: str
    observed: dict = field(default_factory=dict)


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise MonitorError(f'column "{name}" not found; columns are: {", ".join(table.column_names)}')
    return table.column(name)


def _blank_as_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pc.if_else(pc.equal(pc.utf8_trim_whitespace(col), ""), pa.scalar(None, col.type), col)
    return col


def _numbers(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type):
        return pc.cast(col, pa.float64())
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            return pc.cast(_blank_as_null(col), pa.float64())
        except pa.ArrowInvalid:
            raise MonitorError(f'column "{name}" is not numeric') from None
    raise MonitorError(f'column "{name}" is not numeric (it is {col.type})')


def _timestamps(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    if pa.types.is_timestamp(col.type):
        return col if col.type.tz else pc.assume_timezone(col, "UTC")
    if pa.types.is_date(col.type):
        return pc.assume_timezone(pc.cast(pc.cast(col, pa.date32()), pa.timestamp("s")), "UTC")
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        values = _blank_as_null(col).drop_null()
        try:
            parsed = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in pc.unique(values).to_pylist()]
        except ValueError as exc:
            raise MonitorError(f'column "{name}" has a value that is not an ISO-8601 timestamp: {exc}') from None
        utc = [p if p.tzinfo else p.replace(tzinfo=UTC) for p in parsed]
        return pa.chunked_array([pa.array(utc, pa.timestamp("us", "UTC"))])
    raise MonitorError(f'column "{name}" holds no timestamps (it is {col.type})')


def evaluate_monitor(table: pa.Table, monitor: Monitor, now: datetime) -> Anomaly | None:
    spec = monitor.spec()
    found = CHECKS[monitor.type](table, spec, now)
    if found is None:
        return None
    message, observed = found
    return Anomaly(monitor.id, monitor.name, monitor.type, monitor.severity, message, observed)


SAMPLE_ROWS = 5  # an anomaly's first failing records, by row number (1-based, as the file shows them)


def _sample_rows(mask: pa.ChunkedArray | pa.Array) -> list[int]:
    """The row numbers of the first records `mask` flags: where to look, not only how many."""
    return [i + 1 for i in pc.indices_nonzero(pc.fill_null(mask, False)).slice(0, SAMPLE_ROWS).to_pylist()]


def _record_count(table, spec: RecordCountParams, _now):
    n = table.num_rows
    if (spec.min is not None and n < spec.min) or (spec.max is not None and n > spec.max):
        return f"{n} records, expected {_bounds(spec.min, spec.max)}", {"row_count": n, "min": spec.min,
                                                                       "max": spec.max}
    return None


def _bounds(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    return f"at least {lo}" if lo is not None else f"at most {hi}"


def _null_rate(table, spec: NullRateParams, _now):
    col = _blank_as_null(_column(table, spec.column))
    rows = table.num_rows
    nulls = col.null_count
    rate = nulls / rows if rows else 0.0
    if rate > spec.max:
        return (f'{nulls} of {rows} values of "{spec.column}" are null ({rate:.2%}), allowed {spec.max:.2%}',
                {"null_rate": round(rate, 6), "nulls": nulls, "rows": rows, "max": spec.max,
                 "sample_rows": _sample_rows(pc.is_null(col))})
    return None


def _uniqueness(table, spec: UniquenessParams, _now):
    cols = [_column(table, c) for c in spec.columns]
    keys = pa.table({f"k{i}": pc.cast(c, pa.string()) for i, c in enumerate(cols)}).combine_chunks()
    counts = keys.group_by([f"k{i}" for i in range(len(cols))], use_threads=False).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows == 0:
        return None
    duplicates = pc.sum(pc.subtract(repeated["count_all"], 1)).as_py()
    samples = [list(r.values())[:-1] for r in repeated.slice(0, 5).to_pylist()]
    samples = [s[0] if len(s) == 1 else s for s in samples]
    return (f"{duplicates} rows repeat the key ({', '.join(spec.columns)}) of an earlier row",
            {"duplicate_rows": duplicates, "duplicate_keys": repeated.num_rows, "samples": samples,
             "sample_rows": _repeating_rows(keys)})


def _repeating_rows(keys: pa.Table) -> list[int]:
    """The row numbers of the first records whose key an earlier record has (nulls are one value)."""
    seen, rows = set(), []
    for i, key in enumerate(zip(*(keys.column(n).to_pylist() for n in keys.column_names), strict=True)):
        if key in seen:
            rows.append(i + 1)
            if len(rows) == SAMPLE_ROWS:
                break
        seen.add(key)
    return rows


def _freshness(table, spec: FreshnessParams, now: datetime):
    ts = _timestamps(_column(table, spec.column), spec.column)
    newest = pc.max(ts).as_py()
    if newest is None:
        return f'"{spec.column}" has no timestamps', {"newest": None, "max_age_s": spec.age().total_seconds()}
    age = now - newest
    if age > spec.age():
        return (f'newest "{spec.column}" is {newest.isoformat()}, older than {spec.max_age}',
                {"newest": newest.isoformat(), "age_s": round(age.total_seconds(), 3),
                 "max_age_s": spec.age().total_seconds()})
    return None


def _value_range(table, spec: ValueRangeParams, _now):
    values = _numbers(_column(table, spec.column), spec.column)
    masks = []
    if spec.min is not None:
        masks.append(pc.less(values, spec.min))
    if spec.max is not None:
        masks.append(pc.greater(values, spec.max))
    outside = masks[0] if len(masks) == 1 else pc.or_(masks[0], masks[1])
    count = pc.sum(pc.cast(outside, pa.int64())).as_py() or 0
    if count:
        lo, hi = ("-inf" if spec.min is None else spec.min), ("inf" if spec.max is None else spec.max)
        return (f'{count} values of "{spec.column}" are outside [{lo}, {hi}]',
                {"outside": count, "min": spec.min, "max": spec.max, "observed_min": pc.min(values).as_py(),
                 "observed_max": pc.max(values).as_py(), "sample_rows": _sample_rows(outside)})
    return None


def _allowed_values(table, spec: AllowedValuesParams, _now):
    col = pc.cast(_column(table, spec.column), pa.string())
    allowed = pa.array([str(v) for v in spec.values], pa.string())
    bad = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=allowed)))
    count = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
    if count:
        samples = pc.unique(col.filter(bad)).slice(0, 5).to_pylist()
        return (f'{count} values of "{spec.column}" are not allowed', {"not_allowed": count, "samples": samples,
                                                                      "sample_rows": _sample_rows(bad)})
    return None


def _pattern(table, spec: PatternParams, _now):
    col = pc.cast(_column(table, spec.column), pa.string())
    anchored = f"^(?:{spec.regex})$"
    try:
        matches = pc.match_substring_regex(col, anchored)
    except pa.ArrowInvalid as exc:  # a regex Python accepts but RE2 does not
        raise MonitorError(f"regex not supported: {exc}") from None
    bad = pc.and_(pc.is_valid(col), pc.invert(matches))
    count = pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
    if count:
        samples = pc.unique(col.filter(bad)).slice(0, 5).to_pylist()
        return (f'{count} values of "{spec.column}" do not match {spec.regex}',
                {"not_matching": count, "samples": samples, "sample_rows": _sample_rows(bad)})
    return None


def _type_ok(actual: pa.DataType, expected: str) -> bool:
    return {
        "any": lambda t: True,
        "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        "integer": pa.types.is_integer,
        "float": lambda t: pa.types.is_floating(t) or pa.types.is_decimal(t),
        "boolean": pa.types.is_boolean,
        "timestamp": pa.types.is_timestamp,
        "date": pa.types.is_date,
    }[expected](actual)


_TEXT_READS_AS = {  # what a text column's values must all read as, as the rule engine reads them
    "integer": r"^[+-]?[0-9]+$", "float": NUMBER_TEXT, "timestamp": ISO_TEXT, "date": r"^\d{4}-\d{2}-\d{2}$",
    "boolean": r"^(?i:true|false)$"}


def _text_reads_as(col: pa.ChunkedArray, expected: str) -> bool:
    """A text column (a CSV's, a JSON's) whose every non-blank value reads as `expected`: the type a CSV
    cannot carry, judged by its values as the compliance engine parses them, so a CSV and a parquet file of
    the same data pass or fail a schema monitor alike."""
    pattern = _TEXT_READS_AS.get(expected)
    if pattern is None:
        return False
    text = pc.utf8_trim_whitespace(col)
    present = pc.and_(pc.is_valid(text), pc.not_equal(text, ""))
    fine = pc.fill_null(pc.match_substring_regex(text, pattern), False)
    return not (pc.sum(pc.and_(present, pc.invert(fine))).as_py() or 0)


def _schema(table, spec: SchemaParams, _now):
    present = {f.name: f.type for f in table.schema}
    missing = [c for c in spec.columns if c not in present]
    mismatched = [{"column": c, "expected": t, "actual": str(present[c])} for c, t in spec.columns.items()
                  if c in present and not _type_ok(present[c], t)
                  and not (_type_ok(present[c], "string") and _text_reads_as(table.column(c), t))]
    if missing or mismatched:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                [f"{m['column']} is {m['actual']}, expected {m['expected']}" for m in mismatched]
        return "schema differs: " + "; ".join(parts), {"missing": missing, "mismatched": mismatched}
    return None


CHECKS = {"record_count": _record_count, "null_rate": _null_rate, "uniqueness": _uniqueness,
          "freshness": _freshness, "value_range": _value_range, "allowed_values": _allowed_values,
          "pattern": _pattern, "schema": _schema}
