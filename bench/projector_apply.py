"""The projector's apply of a sensitive-data scan's ledger (file outcomes and findings: its bulk), on
SQLite and on PostgreSQL, in the projector's batches (issue 24).

    python -m bench.projector_apply [--files 20000 --findings-per-file 2 --batch 2000 --database-url URL]

One transaction per batch, as projections.projector applies them, into a fresh read-model database:
microseconds per record and records per second. The baseline, in the same run and on the same
database kind: the per-record path every file outcome and finding took before (three or four
statements each: rm_processed_events, the scan's cancel, the late tables, the row), which a scan that
was cancelled still takes; the ratio is printed. PostgreSQL is a throwaway server
(harness/databases.py) unless --database-url names one (an empty database).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import databases
from services import stores
from services.adapters.db import connect, transaction
from services.domain import contracts as c
from services.domain.envelope import make_event
from services.readmodels import apply, sensitive_scans
from services.readmodels.record import Record

SCAN = "scan-bench"


def ledger(files: int, per_file: int) -> list[Record]:
    """A chunk's records as the findings and scan-events topics carry them: each file's findings, then its outcome."""
    out: list[Record] = []
    for i in range(files):
        name = f"dir/file_{i:06d}.jsonl"
        for j in range(per_file):
            data = {"scan_id": SCAN, "finding_id": f"f{i}-{j}", "connector_id": "conn-1", "file": name, "row": j,
                    "column": "email", "line": j + 1, "start": 3, "end": 20, "detector": "email", "family": "email",
                    "confidence": 0.9, "masked": "j***@example.com"}
            event = make_event(c.FINDING_DETECTED, SCAN, data, id=f"e-f{i}-{j}", source="bench", workspace_id="w")
            out.append(Record("t.findings", 0, len(out), c.FINDING_DETECTED, event))
        data = {"scan_id": SCAN, "connector_id": "conn-1", "name": name, "unit_id": "u1", "index": i,
                "status": "scanned", "reason": None, "size": 1200, "version": "v1", "findings": per_file}
        event = make_event(c.FILE_OUTCOME, SCAN, data, id=f"e-o{i}", source="bench", workspace_id="w")
        out.append(Record("t.scan-events", 0, len(out), c.FILE_OUTCOME, event, 1_700_000_000_000 + i))
    return out


def timed(url: str, records: list[Record], batch: int, per_record: bool) -> float:
    conn = connect(url)
    stores.init(conn)
    bulk = sensitive_scans.bulk_scans
    if per_record:  # what every record took before the bulk path
        sensitive_scans.bulk_scans = lambda *_: set()
    try:
        start = time.perf_counter()
        for at in range(0, len(records), batch):
            with transaction(conn):
                apply.apply_batch(conn, records[at:at + batch])
        elapsed = time.perf_counter() - start
    finally:
        sensitive_scans.bulk_scans = bulk
        conn.close()
    rows = connect(url).execute("SELECT COUNT(*) FROM rm_sensitive_findings").fetchone()[0]
    assert rows == sum(r.type == c.FINDING_DETECTED for r in records), rows
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--findings-per-file", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2000, help="records per transaction (the projector's batch)")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a throwaway server)")
    args = parser.parse_args()
    records = ledger(args.files, args.findings_per_file)
    print(f"projector apply: {len(records):,} records ({args.files:,} file outcomes, "
          f"{len(records) - args.files:,} findings), {args.batch:,} a transaction")
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        for kind in ("sqlite", "postgresql"):
            seconds = {}
            for mode in ("per-record", "bulk"):
                if kind == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'{mode}.db'}"
                else:
                    url = args.database_url if args.database_url and mode == "bulk" else databases.server().create()
                seconds[mode] = timed(url, records, args.batch, per_record=mode == "per-record")
                us = seconds[mode] / len(records) * 1e6
                print(f"  {kind:<10} {mode:<10} {seconds[mode]:6.2f} s  {us:6.1f} us/record  "
                      f"{len(records) / seconds[mode]:>9,.0f} records/s", flush=True)
            print(f"  {kind:<10} bulk is {seconds['per-record'] / seconds['bulk']:.1f}x the per-record path")


if __name__ == "__main__":
    main()
