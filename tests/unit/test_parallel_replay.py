"""A parallel replay's order (projections.parallel_replay) arrives at the rows of the ledger applied in
the order it was written: helpers apply some violation partitions into chunk files, in batches of any
size, cut into chunks anywhere; the replay applies every other partition, interleaved any way, and
merges the chunks between any two of its batches, then counts and finalizes (settle). The ledgers
re-deliver violations (a resumed unit's), abort and resume a scan, and compare a rerun to the first
scan (its delta reads the violations' signatures), so counts, finalization and deltas are all at stake.
"""
from __future__ import annotations

import random
import sqlite3
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.parallel_replay import Chunk, merge, settle, split
from services.adapters.db import transaction
from services.readmodels import apply as projection
from services.stores import read_models
from tests.unit.ledger import VIOLATIONS, Ledger, asset_runs, two_scans
from tests.unit.test_projection import batches, interleave

LEDGERS = {"two_scans": two_scans(), "asset_runs": asset_runs()}


def rows(conn) -> dict[str, list[tuple]]:
    return {table: sorted((tuple(r) for r in conn.execute(f"SELECT * FROM {table}")), key=repr)
            for table in read_models.TABLES}


def database(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    read_models.create(conn)
    return conn


def apply(conn, batch) -> None:
    with transaction(conn):
        projection.apply_batch(conn, batch)


@cache
def reference(name: str) -> dict[str, list[tuple]]:
    """The ledger applied in the order it was written, a record per batch."""
    conn = database(":memory:")
    for rec in LEDGERS[name].written:
        apply(conn, [rec])
    return rows(conn)


def parallel(ledger: Ledger, rng: random.Random, helpers: int, directory) -> dict[str, list[tuple]]:
    """The ledger replayed as parallel_replay does, every choice left open made by `rng`."""
    owner = {tp: rng.randrange(helpers + 1) for tp in ledger.streams if tp[0] == VIOLATIONS}  # 0: the replay
    ready: list[list[str]] = []  # each helper's chunks, merged in the order it finished them
    for helper in range(1, helpers + 1):
        mine = Ledger(streams={tp: s for tp, s in ledger.streams.items() if owner.get(tp) == helper})
        chunk, chunks = Chunk(str(directory / f"h{helper}"), 0), []
        for batch in batches(interleave(mine, rng), rng):
            apply(chunk.conn, batch)
            if rng.random() < 0.3:
                chunks.append(chunk.close())
                chunk = Chunk(str(directory / f"h{helper}"), chunk.number + 1)
        ready.append([*chunks, chunk.close()])
    conn = database(directory / "replayed.db")

    def merge_one() -> None:  # the next chunk of any helper: they finish in any order between them
        queue = rng.choice([queue for queue in ready if queue])
        merge(conn, queue.pop(0))

    own = Ledger(streams={tp: s for tp, s in ledger.streams.items() if owner.get(tp, 0) == 0})
    for batch in batches(interleave(own, rng), rng):
        apply(conn, batch)
        while any(ready) and rng.random() < 0.5:
            merge_one()
    while any(ready):
        merge_one()
    settle(conn)
    return rows(conn)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), helpers=st.integers(1, 3), name=st.sampled_from(sorted(LEDGERS)))
def test_a_parallel_replay_arrives_at_the_rows_of_the_ledger_in_order(tmp_path_factory, seed, helpers, name):
    directory = tmp_path_factory.mktemp("parallel")
    assert parallel(LEDGERS[name], random.Random(seed), helpers, directory) == reference(name)


def test_the_split_gives_every_violation_partition_to_one_helper_and_the_rest_to_the_replay():
    span = {("v", p): (0, size) for p, size in enumerate([50, 10, 40, 0, 30])} | {("e", 0): (0, 7)}
    own, shares = split(span, "v", 2)
    assert own == {("e", 0): (0, 7)}
    assert sorted(tp for share in shares for tp in share) == sorted(tp for tp in span if tp[0] == "v")
    assert sorted(sum(e - s for s, e in share.values()) for share in shares) == [60, 70]
