"""Splitting a scan's data into units of work.

Rules that look across records (duplicate, velocity, structuring) must see every record of
their group key, so each distinct group key gets its own set of units, split by a stable
index of the key; record rules ride along with the account split (or plain chunks when
there is no account). The split is deterministic: the same data and rules always give the
same units, so a re-planned scan re-uses the same unit files and ids.

A unit is its row numbers in the upload (`UnitSlice.rows`); its evaluator takes them from the upload
(unit_table). Gathering and writing out every group's copy of the upload was most of a 1M-record
scan's planning (0.3 s before its first unit could run); the take is now each unit's, on the
evaluators' threads, beside the other units.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from services.domain.rules import Rule, parsed_numbers, partition_key, resolve_column

ROW = "__row"


@dataclass(frozen=True)
class UnitSlice:
    index: int
    partition_key: tuple[str, ...]
    rule_ids: list[str]
    rows: pa.Array  # int64 row numbers in the upload, ascending
    # Every rule group splits all records, so only the first group's units count them
    # toward the scan's record_count; otherwise a record is counted once per group.
    counts_records: bool


def with_row_numbers(table: pa.Table) -> pa.Table:
    return table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def rule_groups(table: pa.Table, rules: list[Rule], mapping: dict[str, str]) -> dict[tuple[str, ...], list[Rule]]:
    account = resolve_column("account", mapping) if "account" in mapping else None
    base: tuple[str, ...] = (account,) if account in table.column_names else ()
    groups: dict[tuple[str, ...], list[Rule]] = {}
    for rule in rules:
        groups.setdefault(partition_key(rule, mapping) or base, []).append(rule)
    return groups


def buckets(table: pa.Table, columns: tuple[str, ...], n: int) -> np.ndarray:
    """The unit (0..n-1) of each row; rows with a null key go to unit 0. Every row of a key lands in the
    same unit, and the same data always splits the same way. Where the keys are few beside the rows (the
    accounts of a velocity rule), the index of the key in first-appearance order modulo n: a round robin of
    the keys, so the units hold about as many keys each. Where most rows have a key of their own (the
    transaction ids of a duplicate rule), the key's hash (key_hashes) modulo n, as even by then: a dictionary
    of a million keys cost 150 ms of the scan's planning, the hash 47."""
    if n == 1:
        return np.zeros(table.num_rows, dtype=np.int64)
    if not columns:
        return (np.arange(table.num_rows) * n) // max(table.num_rows, 1)
    parts = [pc.cast(table.column(c), pa.string()) for c in columns]
    key = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")
    key = key.combine_chunks() if isinstance(key, pa.ChunkedArray) else key
    if _few_keys(key):
        unit = pc.dictionary_encode(key).indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64) % n
    else:
        unit = (key_hashes(key) % np.uint64(n)).astype(np.int64)
        if key.null_count:
            unit[np.asarray(key.is_null())] = 0
    return unit


PROBE_ROWS = 65_536


def _few_keys(key: pa.Array) -> bool:
    """Whether the first PROBE_ROWS rows repeat their keys four times on average or more (decided by the data
    alone, so a scan planned again splits the same way)."""
    probe = key.slice(0, PROBE_ROWS)
    return len(pc.unique(probe)) * 4 <= len(probe)


_MULTIPLIER, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


def key_hashes(key: pa.Array) -> np.ndarray:
    """A 64-bit hash of each value's UTF-8 bytes (nulls hash as empty): its length, then each 8-byte
    little-endian word (the last zero-padded) folded in by xor and multiply, then murmur3's finalizer.

    Why not a dictionary of the keys: at one key a row (a transaction id) the dictionary's hash table
    was most of a scan's planning (150 ms of 1M rows), where this is a few numpy passes a word. It is
    fixed: units are named by their index, so a scan planned again must split its rows the same way
    (tests/unit/test_planning.py holds it to a plain-Python reference)."""
    values = key.cast(pa.large_binary())
    if not len(values):
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(values.buffers()[1], np.int64)[values.offset:values.offset + len(values) + 1]
    data = np.frombuffer(values.buffers()[2] or b"", np.uint8)
    padded = np.concatenate([data[:offsets[-1] if len(offsets) else 0], np.zeros(8, np.uint8)])
    # every 8 bytes from any byte on: a word at each row's next position, read unaligned
    words = np.ndarray((len(padded) - 7,), "<u8", padded, 0, (1,))
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = lengths.astype(np.uint64) * _MULTIPLIER
    rows = np.flatnonzero(lengths > 0)
    done = 0
    while rows.size:
        left = lengths[rows] - done
        # the bytes of the word that are the value's (its last word is cut short)
        kept = np.uint64(0xFFFFFFFFFFFFFFFF) >> (8 * (8 - np.minimum(left, 8))).astype(np.uint64)
        word = words[starts[rows] + done] & kept
        h[rows] = (h[rows] ^ word) * _MULTIPLIER
        rows, done = rows[left > 8], done + 8
    h ^= h >> np.uint64(33)
    h *= _MIX1
    h ^= h >> np.uint64(33)
    h *= _MIX2
    h ^= h >> np.uint64(33)
    return h


def typed_for_scan(table: pa.Table, mapping: dict[str, str]) -> pa.Table:
    """CSV uploads are kept as text; the column mapped as amount is read as numbers once,
    here, if all its values are numbers (else the rules report the value that is not).
    Every other column keeps its text: identifiers never pass through a number."""
    return read_numbers(table, numbers_of(table, mapping))


def numbers_of(table: pa.Table, mapping: dict[str, str]) -> list[str]:
    """The columns typed_for_scan reads as numbers: decided over the whole upload, so that every unit
    of a scan reads its amounts alike."""
    name = mapping.get("amount")
    return [name] if name in table.column_names and parsed_numbers(table.column(name)) is not None else []


def read_numbers(table: pa.Table, names: list[str]) -> pa.Table:
    for name in names:
        numbers = parsed_numbers(table.column(name))  # part of a column whose every value reads: they read
        if numbers is not None:
            table = table.set_column(table.column_names.index(name), name, numbers)
    return table


def unit_table(upload: pa.Table, rows: pa.Array, numbers: list[str]) -> pa.Table:
    """A unit's records: its rows of the upload, in order, with `numbers` (numbers_of the whole upload)
    read as numbers and each record's row number."""
    return read_numbers(upload.take(rows), numbers).append_column(ROW, rows)


def plan(table: pa.Table, rules: list[Rule], mapping: dict[str, str], unit_records: int,
         max_units: int) -> list[UnitSlice]:
    n = max(1, min(max_units, math.ceil(table.num_rows / max(unit_records, 1))))
    groups = sorted(rule_groups(table, rules, mapping).items())
    # Each group's split is Arrow and numpy work that releases the GIL: the groups are split at once
    # (nothing else of the scan runs while it is planned, so the cores are free).
    with ThreadPoolExecutor(max(1, min(len(groups), PLAN_THREADS))) as pool:
        splits = list(pool.map(lambda key: _split(table, key, n), (key for key, _ in groups)))
    units: list[UnitSlice] = []
    for g, ((key, group), parts) in enumerate(zip(groups, splits, strict=True)):
        for part in parts:
            units.append(UnitSlice(len(units), key, [r.id for r in group], part, g == 0))
    return units


PLAN_THREADS = 2


def _split(table: pa.Table, key: tuple[str, ...], n: int) -> list[pa.Array]:
    """The row numbers of each unit of one group key, each unit in the table's row order."""
    assignment = buckets(table, key, n)
    # stable, so each unit keeps the table's order; as bytes when they fit: numpy's stable sort of 8-bit
    # integers is a radix sort (30 -> 3 ms a 1M rows)
    order = np.argsort(assignment.astype(np.uint8) if n <= 256 else assignment, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(assignment, minlength=n))])
    return [pa.array(order[starts[b]:starts[b + 1]], pa.int64()) for b in range(n)
            if starts[b] != starts[b + 1] or n == 1]
