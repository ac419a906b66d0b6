"""Splitting an upload into units (services.domain.planning): every row in one unit of each rule
group, every row of a key in the same unit, each unit in the upload's order, and a split that never
changes (a scan planned again must split its rows the same way)."""
from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from services.adapters.blobstore import LocalBlobStore
from services.adapters.readers import to_ipc
from services.domain.planning import ROW, buckets, key_hashes, numbers_of, plan, typed_for_scan, unit_table
from services.domain.rules import parse_rule
from services.runners.compliance import plan_upload, unit_records
from services.settings import Settings

_M = 2**64
_MUL, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53


def reference_hash(value: str | None) -> int:
    """key_hashes, one value at a time in plain Python: what the vectorized form must keep giving."""
    data = (value or "").encode()
    h = len(data) * _MUL % _M
    for i in range(0, len(data), 8):
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * _MUL) % _M
    for mul in (_MIX1, _MIX2):
        h ^= h >> 33
        h = h * mul % _M
    return h ^ (h >> 33)


keys = st.lists(st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["", "a", "T0000001", "ü" * 9])),
                max_size=60)


@given(keys, st.integers(0, 5))
def test_a_key_hash_is_the_plain_reference_for_any_text_and_any_slice(values, cut):
    array = pa.array(values, pa.string())
    for part in (array, array.slice(min(cut, len(values)))):
        expected = [reference_hash(v) for v in part.to_pylist()]
        assert [int(h) for h in key_hashes(part)] == expected


def test_the_key_hash_never_changes():
    """Pinned values: units are named by their index, so a different hash would split a scan planned
    again differently from its first plan."""
    assert [int(h) for h in key_hashes(pa.array(["", "a", "T0000001", "a longer key of 24 bytes"]))] == [
        reference_hash(v) for v in ["", "a", "T0000001", "a longer key of 24 bytes"]] == [
        0, 5175171105764696941, 15452515814542411219, 1237463617109255999]


tables = st.integers(0, 80).flatmap(lambda n: st.fixed_dictionaries({
    "Account": st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "dé", "x" * 30])), min_size=n, max_size=n),
    "Txn": st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=n, max_size=n),
    "Amount": st.lists(st.sampled_from(["1", "20000", "5.5"]), min_size=n, max_size=n),
}))
RULES = [parse_rule(r) for r in (
    {"id": "big", "name": "big", "type": "threshold", "severity": "high", "params": {"field": "amount", "op": "gt",
                                                                                     "value": 100}},
    {"id": "dup", "name": "dup", "type": "duplicate", "severity": "low", "params": {"fields": ["Txn"]}},
)]
MAPPING = {"account": "Account", "amount": "Amount"}


@settings(max_examples=150)
@given(tables, st.integers(1, 7), st.integers(1, 30))
def test_each_group_splits_every_row_into_one_unit_keys_together_in_upload_order(columns, max_units, unit_records):
    table = pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
    units = plan(table, RULES, MAPPING, unit_records, max_units)
    assert [u.rows.to_pylist() for u in units] == [u.rows.to_pylist() for u in plan(table, RULES, MAPPING,
                                                                                      unit_records, max_units)]
    typed = typed_for_scan(table, MAPPING)
    by_group: dict[tuple[str, ...], list] = {}
    for unit in units:
        by_group.setdefault(unit.partition_key, []).append(unit)
    assert set(by_group) == {("Account",), ("Txn",)}
    for (column,), group in by_group.items():
        seen: dict[object, int] = {}
        rows = []
        for i, unit in enumerate(group):
            records = unit_table(table, unit.rows, numbers_of(table, MAPPING))
            unit_rows = records.column(ROW).to_pylist()
            assert unit_rows == sorted(unit_rows)  # the upload's order
            # each record as the whole upload reads it
            assert records.drop_columns([ROW]) == typed.take(pa.array(unit_rows, pa.int64()))
            rows += unit_rows
            for key in records.column(column).to_pylist():
                assert seen.setdefault(key, i) == i  # every row of a key in one unit (nulls: unit 0's)
        assert sorted(rows) == list(range(table.num_rows))
        assert sum(u.counts_records for u in group) in (0, len(group))
    assert [u.index for u in units] == list(range(len(units)))


def test_few_keys_go_round_robin_in_order_of_first_appearance_and_many_by_their_hash():
    """Accounts (few keys, many rows each) are dealt to the units in turn, so each holds as many; keys of
    their own row (transaction ids) go by their hash, as even and without a dictionary of them all."""
    accounts = [f"acct-{i % 9}" for i in range(200)]
    assert [int(u) for u in buckets(pa.table({"k": accounts}), ("k",), 4)] == [i % 9 % 4 for i in range(200)]
    ids = [f"txn-{i}" for i in range(200)]
    assert [int(u) for u in buckets(pa.table({"k": ids}), ("k",), 4)] == [reference_hash(k) % 4 for k in ids]


def test_rows_with_a_null_key_go_to_the_first_unit():
    table = pa.table({"k": pa.array([None, "a", None, "b", "c", None], pa.string())})
    units = buckets(table, ("k",), 3)
    assert [int(units[i]) for i in (0, 2, 5)] == [0, 0, 0]


def test_a_unit_planned_as_its_own_table_reads_as_the_same_records_as_one_planned_as_rows(tmp_path):
    """Work offered before units were row numbers (its `blob` the unit's table) still runs, on the same
    records a unit of the same rows planned now reads."""
    blobs = LocalBlobStore(tmp_path)
    table = pa.table({"Account": [f"a{i % 9}" for i in range(40)], "Txn": [f"t{i}" for i in range(40)],
                      "Amount": [str(i * 7) for i in range(40)]})
    request = {"scan_id": "s", "upload": {"blob": blobs.put(to_ipc(table))},
               "policy": {"rules": [r.model_dump() for r in RULES]}, "mapping": {"mapping": MAPPING}}
    units = plan_upload(request, blobs, Settings(data_dir=tmp_path, unit_records=10, work_partitions=3)).units
    assert len(units) == 6 and sum(u["counted_records"] for u in units) == 40
    typed = typed_for_scan(table, MAPPING)
    for unit in units:
        records = unit_records(unit, blobs)
        old = {"blob": blobs.put(to_ipc(records))}  # the unit's own table, as units were planned before
        assert unit_records(old, blobs).equals(records)
        assert records.drop_columns([ROW]) == typed.take(records.column(ROW))
