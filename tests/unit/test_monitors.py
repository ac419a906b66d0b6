from datetime import UTC, datetime

import pyarrow as pa
import pytest

from services.domain.monitors import MonitorError, evaluate_monitor, parse_monitor

NOW = datetime(2024, 1, 3, 12, tzinfo=UTC)
TABLE = pa.table({
    "order_id": [1, 2, 2, 3],
    "email": ["a@x.io", "", None, "b@x.io"],
    "amount": [1.0, 5.0, 2000.0, None],
    "amount_text": ["1", "5", "2000", " "],
    "ts": ["2024-01-01T00:00:00Z", None, "2024-01-03T06:00:00", "2023-01-01T00:00:00+02:00"],
    "country": ["US", "DE", "FR", None],
})


def run(type_, params, table=TABLE, severity="high"):
    monitor = parse_monitor({"id": "m1", "name": "M", "type": type_, "severity": severity, "params": params})
    return evaluate_monitor(table, monitor, NOW)


@pytest.mark.parametrize("params,fails", [({"min": 4}, False), ({"min": 5}, True), ({"max": 3}, True),
                                          ({"min": 1, "max": 4}, False)])
def test_record_count(params, fails):
    anomaly = run("record_count", params)
    assert (anomaly is not None) == fails
    if fails:
        assert anomaly.observed["row_count"] == 4 and anomaly.severity == "high" and anomaly.monitor_id == "m1"


def test_null_rate_counts_blank_text_as_null():
    anomaly = run("null_rate", {"column": "email", "max": 0.25})
    assert anomaly.observed == {"null_rate": 0.5, "nulls": 2, "rows": 4, "max": 0.25, "sample_rows": [2, 3]}
    assert run("null_rate", {"column": "email", "max": 0.5}) is None


def test_null_rate_of_an_empty_table_is_zero():
    assert run("null_rate", {"column": "a", "max": 0}, pa.table({"a": pa.array([], pa.string())})) is None


def test_uniqueness_reports_the_repeated_rows_and_keys():
    anomaly = run("uniqueness", {"column": "order_id"})
    assert anomaly.observed["duplicate_rows"] == 1 and anomaly.observed["samples"] == ["2"]
    assert run("uniqueness", {"columns": ["order_id", "email"]}) is None  # ("2", "") vs ("2", null)


def test_uniqueness_treats_nulls_as_one_value():
    table = pa.table({"k": [None, None, "a"]})
    assert run("uniqueness", {"columns": ["k"]}, table).observed["duplicate_rows"] == 1


@pytest.mark.parametrize("max_age,fails", [("6h", False), ("5h", True), ("1d", False), (3600 * 5, True)])
def test_freshness_on_iso_strings_naive_as_utc(max_age, fails):
    assert (run("freshness", {"column": "ts", "max_age": max_age}) is not None) == fails


def test_freshness_on_arrow_timestamps_and_without_any():
    table = pa.table({"t": pa.array([datetime(2024, 1, 3, 11)], pa.timestamp("s"))})
    assert run("freshness", {"column": "t", "max_age": "2h"}, table) is None
    assert run("freshness", {"column": "t", "max_age": "30m"}, table).observed["age_s"] == 3600
    empty = pa.table({"t": pa.array([None], pa.string())})
    assert run("freshness", {"column": "t", "max_age": "1h"}, empty).observed["newest"] is None


def test_freshness_on_a_column_that_is_not_a_time_cannot_run():
    with pytest.raises(MonitorError, match="not an ISO-8601"):
        run("freshness", {"column": "country", "max_age": "1h"})


def test_value_range_on_numbers_and_numeric_text():
    assert run("value_range", {"column": "amount", "min": 0, "max": 1000}).observed["outside"] == 1
    assert run("value_range", {"column": "amount_text", "max": 1000}).observed["outside"] == 1
    assert run("value_range", {"column": "amount", "min": 0}) is None
    with pytest.raises(MonitorError, match="not numeric"):
        run("value_range", {"column": "country", "min": 0})


def test_allowed_values_ignores_nulls():
    anomaly = run("allowed_values", {"column": "country", "values": ["US", "DE"]})
    assert anomaly.observed == {"not_allowed": 1, "samples": ["FR"], "sample_rows": [3]}
    assert run("allowed_values", {"column": "order_id", "values": [1, 2, 3]}) is None  # compared as text


def test_pattern_must_match_whole_values():
    assert run("pattern", {"column": "country", "regex": "[A-Z]{2}"}) is None
    assert run("pattern", {"column": "country", "regex": "[A-Z]"}).observed["not_matching"] == 3


def test_schema_reports_missing_columns_and_wrong_types():
    anomaly = run("schema", {"columns": {"order_id": "integer", "amount": "float", "x": "string",
                                         "email": "integer", "ts": "any"}})
    assert anomaly.observed == {"missing": ["x"], "mismatched": [{"column": "email", "expected": "integer",
                                                                  "actual": "string"}]}
    assert run("schema", {"columns": {"order_id": "integer", "country": "string"}}) is None


def test_a_missing_column_is_a_monitor_error_naming_the_columns():
    with pytest.raises(MonitorError, match='column "nope" not found; columns are: order_id'):
        run("null_rate", {"column": "nope", "max": 0})


@pytest.mark.parametrize("type_,params", [
    ("record_count", {}), ("record_count", {"min": 5, "max": 1}), ("null_rate", {"column": "a", "max": 2}),
    ("freshness", {"column": "a", "max_age": "soon"}), ("pattern", {"column": "a", "regex": "("}),
    ("schema", {"columns": {"a": "text"}}), ("uniqueness", {"columns": []}), ("bogus", {}),
    ("null_rate", {"column": "a", "max": 0.1, "extra": 1})])
def test_bad_monitors_are_refused_when_parsed(type_, params):
    with pytest.raises(ValueError):
        parse_monitor({"id": "m", "name": "M", "type": type_, "params": params})


def test_a_schema_monitor_judges_csv_text_by_its_values_as_parquet_by_its_types():
    """The same data as CSV (text) and as parquet (typed) pass or fail a schema monitor alike (issue 20)."""
    typed = pa.table({"Date": pa.array([datetime(2024, 1, 15, 10), None], pa.timestamp("s")),
                      "Amount": pa.array([9500.0, 12.5]), "Count": pa.array([1, 2])})
    text = pa.table({"Date": ["2024-01-15T10:00:00Z", ""], "Amount": ["9500.00", " 12.5 "], "Count": ["1", "2"]})
    ok = {"columns": {"Date": "timestamp", "Amount": "float", "Count": "integer"}}
    for table in (typed, text):
        assert run("schema", ok, table) is None
    messy = pa.table({"Date": ["15/01/2024"], "Amount": ["$9,500.00"], "Count": ["1.5"]})
    anomaly = run("schema", ok, messy)
    assert [m["column"] for m in anomaly.observed["mismatched"]] == ["Date", "Amount", "Count"]


def test_an_anomaly_names_the_rows_to_look_at_not_only_how_many():
    """Row numbers as the file shows them (1-based): the first few records that fail (issue 20)."""
    assert run("uniqueness", {"columns": ["order_id"]}).observed["sample_rows"] == [3]
    assert run("value_range", {"column": "amount", "max": 100}).observed["sample_rows"] == [3]
    assert run("pattern", {"column": "country", "regex": "[A-Z]"}).observed["sample_rows"] == [1, 2, 3]
    many = pa.table({"v": [str(i % 3) for i in range(50)]})
    assert run("uniqueness", {"columns": ["v"]}, many).observed["sample_rows"] == [4, 5, 6, 7, 8]
