"""The rule engine over small hand-built tables; every expected answer is worked out by hand
(or, for the randomized checks, by a plain-Python reference written here)."""
import datetime as dt
import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.domain.rules import (
    VIOLATION_SCHEMA,
    RuleError,
    Unevaluated,
    evaluate,
    evaluate_counted,
    parse_rule,
    partition_key,
)

MAPPING = {"amount": "amt", "account": "acct", "timestamp": "ts"}


def make_rule(type_, **params):
    return parse_rule({"id": "r1", "name": "test rule", "type": type_, "severity": "high", "params": params})


def make_table(rows=None, **columns):
    n = len(next(iter(columns.values())))
    return pa.table({**columns, "__row": pa.array(rows if rows is not None else range(n), pa.int64())})


def run(table, type_, mapping=MAPPING, scale=None, **params):
    result = evaluate(table, make_rule(type_, **params), mapping, scale)
    assert result.schema == VIOLATION_SCHEMA
    return result


def rows_of(result):
    return result.column("row").to_pylist()


def values_of(result):
    return result.column("value").to_pylist()


# --- threshold ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, expected", [
    ("gt", [2]), ("gte", [1, 2]), ("lt", [0]), ("lte", [0, 1]), ("eq", [1]), ("ne", [0, 2])])
def test_threshold_each_op_and_null_ignored(op, expected):
    table = make_table(amt=[5.0, 10.0, 15.0, None])
    assert rows_of(run(table, "threshold", field="amount", op=op, value=10)) == expected


def core(violations: pa.Table) -> list[dict]:
    """A violation's own columns (not its record's mapped fields)."""
    return violations.select(["row", "account", "key", "value", "window"]).to_pylist()


def test_record_violation_shape():
    table = make_table(rows=[7, 3], amt=[20000, 50], acct=["A1", "A2"])
    result = run(table, "threshold", field="amount", op="gt", value=10000)
    assert result.to_pylist() == [{"row": 7, "account": "A1", "key": "7", "value": "20000", "window": None,
                                   "transaction_id": None, "amount": "20000", "timestamp": None}]


def test_account_is_null_without_account_mapping():
    table = make_table(amt=[20000], acct=["A1"])
    result = run(table, "threshold", mapping={"amount": "amt"}, field="amount", op="gt", value=1)
    assert result.column("account").to_pylist() == [None]


def test_threshold_on_numbers_held_as_strings():
    table = make_table(amt=["5", " 12.5 ", "", None, "10000.01"])
    result = run(table, "threshold", field="amount", op="gt", value=10)
    assert rows_of(result) == [1, 4]
    assert values_of(result) == [" 12.5 ", "10000.01"]


def test_cells_that_do_not_read_as_numbers_are_counted_per_rule_not_failing_it():
    """One bad cell failed the rule for the whole file (issue 20): it is left out and counted, with its row."""
    table = make_table(amt=["5", "lots", "20000", "", None, "1.234,56", "99"])
    violations, unread = evaluate_counted(table, make_rule("threshold", field="amount", op="gt", value=10),
                                          MAPPING, None)
    assert rows_of(violations) == [2, 6] and unread == Unevaluated(2, [1, 5])
    _, unread = evaluate_counted(table, make_rule("range", field="amount", min=0, max=10), MAPPING, None)
    assert unread == Unevaluated(2, [1, 5])
    assert evaluate_counted(make_table(amt=["1", "2"]), make_rule("threshold", field="amount", op="gt",
                                                                 value=1), MAPPING, None)[1] is None
    # a column none of whose values reads as a number is not one: the rule fails visibly, it never passes
    with pytest.raises(RuleError, match="cannot read 'USD' as a number"):
        run(make_table(amt=["USD", "EUR", ""]), "threshold", field="amount", op="gt", value=1)
    with pytest.raises(RuleError, match="cannot read '15/01/2024' as an ISO 8601 timestamp"):
        run(make_table(acct=["A"], ts=["15/01/2024"], amt=["1"]), "velocity", group_by="account", window="daily",
            max_count=1)


def test_an_ordering_threshold_needs_a_number_and_never_compares_text():
    """{"op": "gt", "value": "abc"} passed every record silently (issue 20): refused when saved; a number
    written as a string still orders numbers, and a column that does not read as numbers fails the rule."""
    raw = {"id": "big", "name": "Big", "type": "threshold", "severity": "high"}
    for op in ("gt", "gte", "lt", "lte"):
        with pytest.raises(ValidationError, match="compares numbers") as exc:
            parse_rule({**raw, "params": {"field": "amount", "op": op, "value": "abc"}})
        assert exc.value.errors()[0]["loc"] == ("params", "value")
    assert parse_rule({**raw, "params": {"field": "account", "op": "eq", "value": "abc"}}).params["value"] == "abc"
    assert rows_of(run(make_table(amt=["9500.00", "12000"]), "threshold", field="amount", op="gt",
                       value="10000")) == [1]
    # "$9,500.00" reads as 9500 (a currency symbol, a thousands separator): never compared as text
    assert rows_of(run(make_table(amt=["$9,500.00", "12,000", "9,500 USD"]), "threshold", field="amount",
                       op="gt", value="10000")) == [1]


def test_threshold_string_value_compares_text():
    table = make_table(status=["open", "closed", None])
    assert rows_of(run(table, "threshold", field="status", op="eq", value="closed")) == [1]


def test_raw_column_name_without_mapping():
    table = make_table(fee=[1, 99])
    assert rows_of(run(table, "threshold", field="fee", op="gte", value=50)) == [1]


# --- range -------------------------------------------------------------------------------------------

def test_range_bounds_are_inclusive():
    table = make_table(amt=[0, 1, 5, 10, 11, None, -0.5])
    assert rows_of(run(table, "range", field="amount", min=1, max=10)) == [0, 4, 6]


def test_range_with_one_bound():
    table = make_table(amt=[0, 1, 5, 10, 11])
    assert rows_of(run(table, "range", field="amount", min=5)) == [0, 1]
    assert rows_of(run(table, "range", field="amount", max=5)) == [3, 4]


# --- required ----------------------------------------------------------------------------------------

def test_required_flags_null_empty_and_blank():
    table = make_table(acct=["x", "", "  ", None, " y "])
    result = run(table, "required", field="account")
    assert rows_of(result) == [1, 2, 3]
    assert values_of(result) == ["", "  ", None]


def test_required_on_numeric_column():
    table = make_table(amt=[1.0, None, 0.0])
    assert rows_of(run(table, "required", field="amount")) == [1]


# --- allowed / blocked values ------------------------------------------------------------------------

def test_allowed_values_strings():
    table = make_table(cur=["USD", "EUR", "GBP", None, "usd"])
    assert rows_of(run(table, "allowed_values", field="cur", values=["USD", "EUR"])) == [2, 4]


def test_allowed_values_numeric_column():
    table = make_table(code=[1.0, 2.0, 3.0, None])
    assert rows_of(run(table, "allowed_values", field="code", values=[1, 3])) == [1]


def test_blocked_values_strings_and_numbers():
    table = make_table(country=["US", "IR", "KP", None], code=pa.array([1, 2, 3, None], pa.int64()))
    assert rows_of(run(table, "blocked_values", field="country", values=["IR", "KP"])) == [1, 2]
    assert rows_of(run(table, "blocked_values", field="code", values=[2.0])) == [1]


def test_values_on_string_column_strings_as_text_numbers_as_numbers():
    table = make_table(code=["1", "2", "10", "1.0", "01x"])
    assert rows_of(run(table, "blocked_values", field="code", values=["1", "10"])) == [0, 2]
    assert rows_of(run(table, "blocked_values", field="code", values=[1, 10])) == [0, 2, 3]


# --- pattern -----------------------------------------------------------------------------------------

def test_pattern_anchored():
    table = make_table(ref=["AB-123", "ab-123", "AB-12", None, "xAB-123"])
    assert rows_of(run(table, "pattern", field="ref", regex=r"^[A-Z]{2}-\d{3}$")) == [1, 2, 4]


def test_pattern_uses_search_semantics():
    table = make_table(ref=["a123b", "ab"])
    assert rows_of(run(table, "pattern", field="ref", regex=r"\d{3}")) == [1]


def test_pattern_unsupported_by_re2_is_rule_error():
    table = make_table(ref=["abc"])
    with pytest.raises(RuleError, match="regular expression"):
        run(table, "pattern", field="ref", regex=r"a(?=b)")


def test_dictionary_encoded_column():
    table = make_table(cur=pa.array(["USD", "XXX", None]).dictionary_encode())
    assert rows_of(run(table, "allowed_values", field="cur", values=["USD"])) == [1]


# --- duplicate ---------------------------------------------------------------------------------------

def test_duplicate_keeps_earliest_row_even_out_of_order():
    # "a" is at rows 5, 9, 0 (earliest 0); "b" at rows 2, 7 (earliest 2).
    table = make_table(rows=[5, 2, 9, 0, 7], acct=["a", "b", "a", "a", "b"])
    result = run(table, "duplicate", fields=["account"])
    assert core(result) == [
        {"row": 5, "account": "a", "key": "5", "value": "a", "window": None},
        {"row": 7, "account": "b", "key": "7", "value": "b", "window": None},
        {"row": 9, "account": "a", "key": "9", "value": "a", "window": None},
    ]


def test_duplicate_multi_field_and_null_keys():
    table = make_table(acct=["a", "a", None, None, "a", "a"], ref=[1, 1, 3, 3, 2, None])
    result = run(table, "duplicate", fields=["account", "ref"])
    assert rows_of(result) == [1]
    assert values_of(result) == ["a|1"]


# --- velocity ----------------------------------------------------------------------------------------

def test_velocity_count_daily():
    table = make_table(
        acct=["A", "A", "B", "A", "B", "A"],
        ts=["2024-01-15T08:00:00", "2024-01-15 09:00:00", "2024-01-15", "2024-01-15T23:59:59", "2024-01-15",
            "2024-01-16T00:00:00"],
        amt=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    result = run(table, "velocity", group_by="account", window="daily", max_count=2)
    assert core(result) == [
        {"row": None, "account": "A", "key": "A|2024-01-15", "value": "count=3 sum=7.00", "window": "2024-01-15"}]


def test_velocity_sum_weekly_across_iso_year_boundary():
    # 2020-12-28 (Mon) and 2021-01-03 (Sun) are ISO 2020-W53; 2021-01-04 is 2021-W01; 2019-12-30 is 2020-W01.
    table = make_table(acct=["A", "A", "A", "A"], ts=["2020-12-28", "2021-01-03", "2021-01-04", "2019-12-30"],
                       amt=[50.0, 60.0, 70.0, 101.0])
    result = run(table, "velocity", group_by="account", window="weekly", max_sum=100)
    assert result.column("window").to_pylist() == ["2020-W01", "2020-W53"]
    assert values_of(result) == ["count=1 sum=101.00", "count=2 sum=110.00"]


def test_velocity_monthly_and_sorted_by_group_then_window():
    table = make_table(acct=["B", "A", "A", "B", "B", "A"],
                       ts=["2024-02-01", "2024-01-31T23:59:59", "2024-01-01", "2024-02-29", "2024-03-01",
                           "2024-02-01T00:00:00"],
                       amt=[1.0] * 6)
    result = run(table, "velocity", group_by="account", window="monthly", max_count=1)
    assert result.column("key").to_pylist() == ["A|2024-01", "B|2024-02"]


def test_velocity_temporal_scale_window():
    table = make_table(acct=["A", "A"], ts=["2024-01-01", "2024-01-20"], amt=[1.0, 1.0])
    params = dict(group_by="account", window="temporal_scale", max_count=1)
    assert run(table, "velocity", scale=None, **params).num_rows == 0  # default daily: one per day
    assert run(table, "velocity", scale="weekly", **params).num_rows == 0
    assert run(table, "velocity", scale="monthly", **params).column("window").to_pylist() == ["2024-01"]


def test_velocity_ignores_null_group_and_timestamp_and_sums_skip_null_amounts():
    table = make_table(acct=["A", None, "A", "A"], ts=["2024-01-01", "2024-01-01", None, "2024-01-01"],
                       amt=[100.0, 500.0, 500.0, None])
    # Counted: rows 0 and 3; summed: row 0 only (row 3 has no amount).
    result = run(table, "velocity", group_by="account", window="daily", max_count=1)
    assert values_of(result) == ["count=2 sum=100.00"]
    assert run(table, "velocity", group_by="account", window="daily", max_sum=100).num_rows == 0


def test_velocity_group_value_is_text():
    table = make_table(cust=pa.array([7, 7], pa.int64()), ts=["2024-01-01", "2024-01-01"], amt=[1.0, 2.0])
    result = run(table, "velocity", group_by="cust", window="daily", max_count=1)
    assert core(result) == [
        {"row": None, "account": "7", "key": "7|2024-01-01", "value": "count=2 sum=3.00", "window": "2024-01-01"}]


# --- timestamps --------------------------------------------------------------------------------------

def test_tz_aware_arrow_timestamps_cross_midnight_utc():
    ny = dt.timezone(dt.timedelta(hours=-5))
    local = [dt.datetime(2024, 1, 15, 20, 0, tzinfo=ny),  # 2024-01-16 01:00 UTC
             dt.datetime(2024, 1, 16, 10, 0, tzinfo=ny),  # 2024-01-16 15:00 UTC
             dt.datetime(2024, 1, 15, 18, 0, tzinfo=ny)]  # 2024-01-15 23:00 UTC
    ts = pa.array(local, pa.timestamp("us", tz="America/New_York"))
    table = make_table(acct=["A", "A", "A"], ts=ts, amt=[1.0, 1.0, 1.0])
    result = run(table, "velocity", group_by="account", window="daily", max_count=1)
    assert result.column("window").to_pylist() == ["2024-01-16"]
    assert values_of(result) == ["count=2 sum=2.00"]


def test_string_offsets_are_converted_to_utc():
    table = make_table(acct=["A", "A", "A"],
                       ts=["2024-01-15T22:30:00-03:00", "2024-01-16T00:10:00Z", "2024-01-16T01:00:00+02:00"],
                       amt=[1.0, 1.0, 1.0])
    # UTC: 2024-01-16 01:30, 2024-01-16 00:10, 2024-01-15 23:00.
    result = run(table, "velocity", group_by="account", window="daily", max_count=1)
    assert result.column("key").to_pylist() == ["A|2024-01-16"]


def test_naive_and_date32_timestamps():
    naive = pa.array([dt.datetime(2024, 3, 1, 23, 59), dt.datetime(2024, 3, 1, 0, 0)], pa.timestamp("ms"))
    dates = pa.array([dt.date(2024, 3, 1), dt.date(2024, 3, 1)], pa.date32())
    for ts in (naive, dates):
        table = make_table(acct=["A", "A"], ts=ts, amt=[1.0, 1.0])
        result = run(table, "velocity", group_by="account", window="daily", max_count=1)
        assert result.column("window").to_pylist() == ["2024-03-01"]


def test_a_record_whose_time_or_amount_does_not_read_is_left_out_of_its_window_and_counted():
    table = make_table(acct=["A", "A", "A", "A"], ts=["2024-01-15", "15/01/2024", None, "2024-01-15T10:00:00Z"],
                       amt=["1", "1", "1", "n/a"])
    violations, unread = evaluate_counted(table, make_rule("velocity", group_by="account", window="daily",
                                                           max_count=0), MAPPING, None)
    assert core(violations) == [{"row": None, "account": "A", "key": "A|2024-01-15", "value": "count=1 sum=1.00",
                                 "window": "2024-01-15"}]
    assert unread == Unevaluated(2, [1, 3])  # 15/01/2024 (a day-first date) and n/a; the null time is no record


# --- structuring -------------------------------------------------------------------------------------

def test_structuring_lower_inclusive_upper_exclusive():
    table = make_table(acct=["A", "A", "A", "A", "A", "B", "B"],
                       ts=["2024-01-15"] * 7,
                       amt=[9000.0, 9999.99, 10000.0, 8999.99, 9500.0, 9100.0, 9200.0])
    result = run(table, "structuring", group_by="account", window="daily", lower=9000, upper=10000, min_count=3)
    # A in band: 9000, 9999.99, 9500 -> 3; B has only 2.
    assert core(result) == [{"row": None, "account": "A", "key": "A|2024-01-15",
                                   "value": "count=3 sum=28499.99", "window": "2024-01-15"}]


def test_structuring_exact_min_count_across_days():
    table = make_table(acct=["A", "A", "A"], ts=["2024-01-15", "2024-01-16", "2024-01-16"],
                       amt=[9500.0, 9500.0, None])
    assert run(table, "structuring", group_by="account", window="daily", lower=9000, upper=10000,
               min_count=2).num_rows == 0
    assert run(table, "structuring", group_by="account", window="weekly", lower=9000, upper=10000,
               min_count=2).column("window").to_pylist() == ["2024-W03"]


# --- errors, empties, partition keys -----------------------------------------------------------------

def test_missing_column_is_rule_error():
    table = make_table(other=[1])
    with pytest.raises(RuleError, match="column 'amt' not found"):
        run(table, "threshold", field="amount", op="gt", value=1)
    with pytest.raises(RuleError, match="column 'ts' not found"):
        run(make_table(acct=["A"], amt=[1.0]), "velocity", group_by="account", window="daily", max_count=1)


def test_empty_table_gives_empty_result_with_schema():
    table = make_table(amt=pa.array([], pa.float64()), acct=pa.array([], pa.string()), ts=pa.array([], pa.string()))
    for type_, params in [("threshold", dict(field="amount", op="gt", value=1)),
                          ("duplicate", dict(fields=["account"])),
                          ("velocity", dict(group_by="account", window="daily", max_count=1))]:
        assert run(table, type_, **params).num_rows == 0


def test_partition_key():
    assert partition_key(make_rule("duplicate", fields=["account", "ref"]), MAPPING) == ("acct", "ref")
    assert partition_key(make_rule("velocity", group_by="account", window="daily", max_count=1), MAPPING) == ("acct",)
    assert partition_key(make_rule("structuring", group_by="cust", window="daily", lower=1, upper=2, min_count=1),
                         MAPPING) == ("cust",)
    assert partition_key(make_rule("threshold", field="amount", op="gt", value=1), MAPPING) == ()


@pytest.mark.parametrize("params, loc", [
    (dict(field="amount", op="bigger", value=1), ("params", "op")),
    (dict(field="amount", op="gt"), ("params", "value")),
    (dict(field="amount", op="gt", value=1, extra=2), ("params", "extra")),
])
def test_parse_rule_rejects_bad_threshold_params(params, loc):
    with pytest.raises(ValidationError) as info:
        make_rule("threshold", **params)
    assert info.value.errors()[0]["loc"] == loc


@pytest.mark.parametrize("type_, params, message", [
    ("range", dict(field="amount"), "at least one of 'min' and 'max'"),
    ("velocity", dict(group_by="account", window="daily"), "at least one of 'max_count' and 'max_sum'"),
    ("velocity", dict(group_by="account", window="hourly", max_count=1), "window"),
    ("pattern", dict(field="ref", regex="(unclosed"), "invalid regular expression"),
    ("allowed_values", dict(field="cur", values=[]), "at least 1"),
    ("duplicate", dict(fields=[]), "at least 1"),
    ("structuring", dict(group_by="a", window="daily", lower=10, upper=5, min_count=1), "below 'upper'"),
])
def test_parse_rule_rejects_bad_params(type_, params, message):
    with pytest.raises(ValidationError, match=message) as info:
        make_rule(type_, **params)
    assert info.value.errors()[0]["loc"][0] == "params"


@pytest.mark.parametrize("change", [{"type": "sql"}, {"severity": "urgent"}, {"id": ""}, {"colour": "red"}])
def test_parse_rule_rejects_bad_rule(change):
    raw = {"id": "r1", "name": "n", "type": "required", "severity": "low", "params": {"field": "x"}, **change}
    with pytest.raises(ValidationError):
        parse_rule(raw)


def test_parse_rule_normalizes_params():
    rule = make_rule("velocity", group_by="account", window="daily", max_count=3)
    assert rule.active is True
    assert rule.params == {"group_by": "account", "window": "daily", "max_count": 3, "field": "amount"}


# --- randomized checks against plain-Python references -----------------------------------------------

def random_records(seed, n=2000):
    rnd = random.Random(seed)
    start = dt.datetime(2020, 12, 1, tzinfo=dt.UTC)
    accounts, stamps, amounts, refs = [], [], [], []
    for _ in range(n):
        accounts.append(None if rnd.random() < 0.03 else f"A{rnd.randrange(25)}")
        moment = start + dt.timedelta(minutes=rnd.randrange(70 * 24 * 60))
        offset = dt.timezone(dt.timedelta(hours=rnd.choice([-8, -3, 0, 5, 9])))
        text = moment.astimezone(offset).isoformat() if rnd.random() < 0.8 else moment.strftime("%Y-%m-%d %H:%M:%S")
        stamps.append(None if rnd.random() < 0.03 else text)
        amounts.append(None if rnd.random() < 0.05 else round(rnd.uniform(1, 1000), 2))
        refs.append(None if rnd.random() < 0.05 else rnd.randrange(40))
    order = list(range(n))
    rnd.shuffle(order)  # a unit's rows are a subset of the upload, in no particular order
    return make_table(rows=order, acct=accounts, ts=stamps, amt=amounts, ref=refs)


def reference_window(text, window):
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    if window == "daily":
        return moment.strftime("%Y-%m-%d")
    if window == "weekly":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


def reference_velocity(records, window, max_count, max_sum):
    groups = {}
    for r in records:
        if r["acct"] is None or r["ts"] is None:
            continue
        count, total = groups.get((r["acct"], reference_window(r["ts"], window)), (0, 0.0))
        groups[(r["acct"], reference_window(r["ts"], window))] = (count + 1, total + (r["amt"] or 0.0))
    return [(f"{g}|{w}", f"count={c} sum={s:.2f}") for (g, w), (c, s) in sorted(groups.items())
            if (max_count is not None and c > max_count) or (max_sum is not None and s > max_sum)]


def reference_duplicates(records):
    first, dups = {}, []
    for r in sorted(records, key=lambda r: r["__row"]):
        key = (r["acct"], r["ref"])
        if None in key:
            continue
        if key in first:
            dups.append((r["__row"], r["acct"], f"{r['acct']}|{r['ref']}"))
        first.setdefault(key, r["__row"])
    return dups


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("window, max_count, max_sum", [
    ("daily", 1, None), ("weekly", 6, None), ("monthly", None, 12000.0), ("weekly", 8, 4000.0)])
def test_velocity_matches_reference(seed, window, max_count, max_sum):
    table = random_records(seed)
    params = {k: v for k, v in dict(max_count=max_count, max_sum=max_sum).items() if v is not None}
    result = run(table, "velocity", group_by="account", window=window, **params)
    expected = reference_velocity(table.to_pylist(), window, max_count, max_sum)
    assert expected, "the random data should produce some violations"
    assert list(zip(result.column("key").to_pylist(), values_of(result), strict=True)) == expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicate_matches_reference(seed):
    table = random_records(seed)
    result = run(table, "duplicate", fields=["account", "ref"])
    expected = reference_duplicates(table.to_pylist())
    assert expected
    assert list(zip(rows_of(result), result.column("account").to_pylist(), values_of(result), strict=True)) == expected


def test_a_mapped_column_that_does_not_read_as_its_target_is_a_warning():
    from services.domain.rules import mapping_warnings
    table = pa.table({"Amount": ["9500.00", "$9,500.00", "1.234,56", "", None, "about 9500"],
                      "Date": ["2024-01-15T10:00:00Z", "15/01/2024", "2024-01-16", "2024-01-16 10:00", None, ""],
                      "Account": ["A", "B", "C", "D", "E", "F"]})
    warnings = mapping_warnings({"amount": "Amount", "timestamp": "Date", "account": "Account"}, table)
    assert [w["path"] for w in warnings] == [["mapping", "amount"], ["mapping", "timestamp"]]
    # read as the rules read amounts: $9,500.00 is 9500; a decimal comma is a dialect the upload says
    assert "2 of the first 6 values do not read as a number (e.g. '1.234,56')" in warnings[0]["message"]
    assert "1 of the first 6 values do not read as a timestamp (e.g. '15/01/2024')" in warnings[1]["message"]
    clean = pa.table({"Amount": ["1", "2.5"], "Date": ["2024-01-15", "2024-01-15T10:00:00+02:00"]})
    assert mapping_warnings({"amount": "Amount", "timestamp": "Date"}, clean) == []


def test_a_violation_carries_its_records_mapped_fields_and_an_accountless_one_its_own_signature():
    from services.domain.delta import signature
    from services.domain.evaluation import violation_events
    table = pa.table({"id": ["T1", "T2", "T3"], "amt": ["20000", "15000", "5"], "acct": ["A1", None, None],
                      "ts": ["2024-01-15T10:00:00Z", "2024-01-16T10:00:00Z", None],
                      "__row": pa.array([1, 2, 3], pa.int64())})
    mapping = {"amount": "amt", "account": "acct", "timestamp": "ts", "transaction_id": "id"}
    rule = parse_rule({"id": "big", "name": "Big", "type": "threshold", "severity": "high",
                       "params": {"field": "amount", "op": "gt", "value": 10000}})
    found = evaluate(table, rule, mapping, None)
    events = violation_events({"id": "c", "subject": "s", "workspaceid": "w"},
                              {"scan_id": "s", "unit_id": "s.u0"}, rule, found)
    assert [e["data"]["record"] for e in events] == [
        {"account": "A1", "transaction_id": "T1", "amount": "20000", "timestamp": "2024-01-15T10:00:00Z"},
        {"transaction_id": "T2", "amount": "15000", "timestamp": "2024-01-16T10:00:00Z"}]
    # with an account, seed 001's rule_id:account; without, the record's own: never one signature for all
    assert [e["data"]["signature"] for e in events] == ["big:A1", "big:#T2"]
    assert signature("big", None, "7") == "big:#7" and signature("big", "A1", "7") == "big:A1"


# --- the zoned-ISO fast path gives exactly what the general text path gives -------------------------

_TIME_SHAPES = st.sampled_from([
    "2024-01-15T10:00:00Z", "2024-03-31T23:59:59.5+02:00", "2024-02-29 08:30Z", "2024-12-31T00:00:00-0530",
    "2024-01-15T10:00:00", "2024-01-15", " 2024-01-15T10:00:00Z ", "", "soon", "2024-13-45T10:00:00Z",
    "2024-01-15Z", "2024-06-01T12:00+01", None,
    "2024-01-15T10Z",  # Arrow reads it, ISO_TEXT does not: unread, not a time
    "2024-01-15T10:00:00.123456789Z"])  # ISO_TEXT reads it, Arrow not at microseconds


@settings(max_examples=300, deadline=None)
@given(st.lists(_TIME_SHAPES, max_size=12), st.integers(0, 3))
def test_the_zoned_iso_fast_path_agrees_with_the_text_path(values, chunks):
    from services.domain.rules import RuleError, _parsed_timestamps, _text_timestamps

    cut = sorted({len(values) * i // (chunks + 1) for i in range(1, chunks + 1)})
    bounds = zip([0, *cut], [*cut, len(values)], strict=True)
    col = pa.chunked_array([pa.array(values[a:b], pa.string()) for a, b in bounds], pa.string())

    def outcome(fn):
        try:
            times, unread = fn(col, "Date")
        except RuleError as exc:
            return "error", str(exc)
        return times.to_pylist(), None if unread is None else unread.to_pylist()

    assert outcome(_parsed_timestamps) == outcome(_text_timestamps)


@settings(max_examples=100, deadline=None)
@given(st.lists(_TIME_SHAPES, min_size=1, max_size=12), st.integers(0, 5), st.integers(0, 5))
def test_a_parsed_column_is_kept_only_for_its_own_buffers(values, start, length):
    """Slices of one array share its buffers at other offsets: each is its own entry, and a column
    parsed again (another rule of the unit) is the kept parse, exactly."""
    from services.domain.rules import RuleError, _parsed_timestamps, _timestamps

    def outcome(fn, col):
        try:
            times, unread = fn(col, "Date")
        except RuleError as exc:
            return "error", str(exc)
        return times.to_pylist(), None if unread is None else unread.to_pylist()

    whole = pa.array(values, pa.string())
    for col in (pa.chunked_array([whole]), pa.chunked_array([whole.slice(start, length)], pa.string()),
                pa.chunked_array([whole.slice(start)], pa.string()), pa.chunked_array([pa.array(values)])):
        assert outcome(_timestamps, col) == outcome(_parsed_timestamps, col)
        if outcome(_timestamps, col)[0] != "error":
            assert _timestamps(col, "Date") is _timestamps(col, "Date")  # the second rule's parse is the first's
