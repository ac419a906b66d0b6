"""The projector's apply of a compliance scan's violations (the bulk of its ledger), with the violations
named as a scan plans them now (`clustered_ids`: ids that sort together by unit and rule) against the
uuid5 they had before, on SQLite and on PostgreSQL (issue 23).

    python -m bench.violation_apply [--violations 300000 --per-slice 800 --postgresql]

The events are the evaluator's own bytes (`encoded_violations`, one rule's violations of a unit a
slice), decoded as the projector decodes them (`decode_record`) and applied with `apply_batch` into a
fresh read-model database, one transaction a batch: 2,000 (the live projector's batch while a scan
runs: what 50 ms of a busy log brings) and 20,000 (its most, and a replay's). Figures are the CPU
seconds of this process (what the projector takes from the worker on a shared machine; the database
server's own CPU is not in them, so PostgreSQL's figures are its client's plus the wall-clock). The
ratio is uuid5 ÷ clustered, measured back to back in the same run.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from harness import databases
from services import stores
from services.adapters.db import connect, transaction
from services.domain.evaluation import encoded_violations
from services.domain.rules import VIOLATION_SCHEMA, parse_rule
from services.readmodels.apply import apply_batch, decode_record

SCAN = "scan-bench"
RULES = [parse_rule({"id": f"r{i}", "name": f"Rule {i}", "type": "threshold", "severity": "high",
                     "params": {"field": "amount", "op": "gt", "value": 1}}) for i in range(7)]


class _Message:
    """A consumed record as decode_record reads it."""

    def __init__(self, offset: int, value: bytes):
        self._offset, self._value = offset, value

    def topic(self):
        return "bench.violations"

    def partition(self):
        return 0

    def offset(self):
        return self._offset

    def value(self):
        return self._value


def ledger(violations: int, per_slice: int, ids: str) -> list[bytes]:
    """`violations` events in slices of `per_slice` (a unit's violations of one rule), units of 7 slices."""
    cause = {"id": "cmd", "subject": SCAN, "workspaceid": "w"}
    out: list[bytes] = []
    for start in range(0, violations, per_slice):
        n = min(per_slice, violations - start)
        slice_no = start // per_slice
        unit = f"{SCAN}.u{slice_no // len(RULES)}"
        rows = list(range(start, start + n))
        table = pa.table({"row": rows, "key": [f"T{i}" for i in rows], "account": [f"ACC-{i % 1000:03d}" for i in rows],
                          "value": [f"{9000 + i % 999}.50" for i in rows], "window": [None] * n,
                          "transaction_id": [f"T{i}" for i in rows], "amount": [f"{9000 + i % 999}.50" for i in rows],
                          "timestamp": ["2024-02-01T10:00:00Z"] * n}, schema=VIOLATION_SCHEMA)
        work = {"scan_id": SCAN, "unit_id": unit, **({"violation_ids": "clustered"} if ids == "clustered" else {})}
        out.extend(encoded_violations(cause, work, RULES[slice_no % len(RULES)], table))
    return out


def timed(url: str, events: list[bytes], batch: int) -> tuple[float, float]:
    """(CPU s, wall s) to decode and apply the events, a transaction a batch."""
    conn = connect(url)
    stores.init(conn)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for at in range(0, len(events), batch):
            records = [decode_record(_Message(at + i, raw)) for i, raw in enumerate(events[at:at + batch])]
            with transaction(conn):
                apply_batch(conn, records)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rows = conn.execute("SELECT COUNT(*) FROM rm_violations").fetchone()[0]
    finally:
        conn.close()
    assert rows == len(events), (rows, len(events))
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--violations", type=int, default=300_000)
    parser.add_argument("--per-slice", type=int, default=800,
                        help="violations of one rule in one unit (a 1M scan: ~760)")
    parser.add_argument("--batches", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--postgresql", action="store_true", help="also on a throwaway PostgreSQL server")
    args = parser.parse_args()
    events = {ids: ledger(args.violations, args.per_slice, ids) for ids in ("uuid5", "clustered")}
    print(f"violation apply: {args.violations:,} violations, {args.per_slice} a slice; CPU µs a violation "
          f"(best of {args.repeat}), wall s beside")
    kinds = ["sqlite"] + (["postgresql"] if args.postgresql else [])
    with tempfile.TemporaryDirectory(prefix="bench-violations-") as tmp:
        for kind in kinds:
            for batch in args.batches:
                best: dict[str, tuple[float, float]] = {}
                for run in range(args.repeat):
                    for ids in ("uuid5", "clustered"):  # alternating: the machine's drift falls on both
                        if kind == "sqlite":
                            url = f"sqlite:///{Path(tmp) / f'{ids}-{batch}-{run}.db'}"
                        else:
                            url = databases.server().create()  # a throwaway server's new database
                        measured = timed(url, events[ids], batch)
                        best[ids] = min(best.get(ids, measured), measured)
                line = "  ".join(f"{ids} {cpu / args.violations * 1e6:5.2f} µs ({wall:5.2f} s)"
                                 for ids, (cpu, wall) in best.items())
                print(f"  {kind:<10} {batch:>6,} a transaction: {line}  "
                      f"uuid5 ÷ clustered {best['uuid5'][0] / best['clustered'][0]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
