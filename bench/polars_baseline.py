"""The bench's outside baseline: polars reading the CSV and evaluating harness.data.RULES in one process.

What a data engineer would write instead of a ledger: no events, no database, no API. The rules'
meaning is the product's (services.domain.rules): a threshold, required, allowed-values and pattern
rule flags records; a duplicate flags every record whose key an earlier record had; velocity and
structuring flag (account, window) groups, daily by UTC date and weekly by ISO week. The bench
checks the violation count equals the ledger's, so the two did the same work.
"""
from __future__ import annotations

import time

import polars as pl

from harness.data import MAPPING, RULES


def _col(field: str) -> pl.Expr:
    return pl.col(MAPPING.get(field, field))


def _window(window: str) -> pl.Expr:
    ts = _col("timestamp").str.to_datetime(time_zone="UTC")
    if window == "daily":
        return ts.dt.date()
    return ts.dt.iso_year() * 100 + ts.dt.week()


def _count(df: pl.DataFrame, rule: dict) -> int:
    p, kind = rule["params"], rule["type"]
    if kind == "threshold":
        return df.filter(_col(p["field"]).cast(pl.Float64) > p["value"]).height
    if kind == "required":
        return df.filter(_col(p["field"]).is_null() | (_col(p["field"]).cast(pl.Utf8).str.strip_chars() == "")).height
    if kind == "allowed_values":
        return df.filter(_col(p["field"]).is_not_null() & ~_col(p["field"]).is_in(p["values"])).height
    if kind == "pattern":
        return df.filter(_col(p["field"]).is_not_null() & ~_col(p["field"]).str.contains(p["regex"])).height
    if kind == "duplicate":
        keys = [MAPPING.get(f, f) for f in p["fields"]]
        complete = df.drop_nulls(keys)
        return complete.height - complete.unique(subset=keys).height
    grouped = df.with_columns(_window(p["window"]).alias("_w"), _col("amount").cast(pl.Float64).alias("_a"))
    if kind == "structuring":
        grouped = grouped.filter((pl.col("_a") >= p["lower"]) & (pl.col("_a") < p["upper"]))
    counts = grouped.group_by(MAPPING.get(p["group_by"], p["group_by"]), "_w").len()
    limit = p["max_count"] if kind == "velocity" else p["min_count"] - 1
    return counts.filter(pl.col("len") > limit).height


def polars_scan(path: str) -> tuple[float, int]:
    """Seconds to read the CSV and evaluate every rule, and the violations found."""
    started = time.perf_counter()
    df = pl.read_csv(path, infer_schema_length=0)  # every column as text, as the ledger reads an upload
    found = sum(_count(df, rule) for rule in RULES)
    return time.perf_counter() - started, found
