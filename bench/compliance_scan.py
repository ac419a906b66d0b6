"""Compliance scan benchmark: POST /api/scan/run to `completed`, beside the same rules evaluated
in-process on the same data, and beside polars reading the CSV and evaluating them (bench.polars_baseline):
the ratios are what the ledger costs over the product's own rules engine and over one polars process.

    pip install -e '.[bench]' && python -m bench.compliance_scan [--sizes 50000 1000000]

Starts its own local broker (or uses KAFKA_BOOTSTRAP_SERVERS), worker, projector and API.
"""
from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bench.api_load import Readers, cpu_seconds, peak_rss_mb
from bench.polars_baseline import polars_scan
from harness.data import MAPPING, RULES
from harness.system import TOKEN, Broker, System
from services.adapters.readers import read_table
from services.domain.planning import typed_for_scan, with_row_numbers
from services.domain.rules import evaluate, parse_rule

METERED = re.compile(r": (?P<n>[\d,]+) (?P<unit>\w+) in (?P<s>[\d.]+) s \(")


def metered(stderr: str) -> tuple[int, float]:
    """(count, seconds) from a command's throughput line (cli/progress.py)."""
    found = METERED.findall(stderr)
    assert found, stderr
    n, _, s = found[-1]
    return int(n.replace(",", "")), float(s)


def make_csv(n: int, seed: int = 7) -> bytes:
    """Transactions shaped like the tests' data, generated vectorized for speed."""
    rng = np.random.default_rng(seed)
    # ACC-000..ACC-999: the format rule passes
    accounts = np.char.add("ACC-", np.char.zfill(rng.integers(0, 1000, n).astype(str), 3))
    amounts = np.round(np.where(rng.random(n) < 0.03, rng.uniform(9000, 9999, n), rng.uniform(1, 9000, n)), 2)
    minutes = rng.integers(0, 60 * 24 * 90, n).astype("timedelta64[m]")
    dates = (np.datetime64("2024-01-01T00:00") + minutes).astype(str)
    table = pa.table({
        "Txn ID": np.char.add("T", rng.integers(0, n * 100, n).astype(str)),
        "Account ID": accounts,
        "Amount": amounts,
        "Currency": rng.choice(["USD", "EUR", "GBP"], n, p=[0.6, 0.39, 0.01]),
        "Date": np.char.add(dates, ":00Z"),
    })
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def in_process(csv: bytes) -> tuple[float, int]:
    """Read the same upload and run every rule over it in this process: the floor to beat."""
    table = with_row_numbers(typed_for_scan(read_table(csv, "csv", 10_000_000, as_text=True), MAPPING))
    started = time.perf_counter()
    found = sum(evaluate(table, parse_rule(r), MAPPING, "daily").num_rows for r in RULES)
    return time.perf_counter() - started, found


def ledger_scan(api: httpx.Client, policy_id: str, upload_id: str, mapping_id: str) -> tuple[float, dict, list[float]]:
    """POST to completed; returns the time, the final body and the latency of every status
    read made while the scan ran (so the p99 is the one users see under load)."""
    started = time.perf_counter()
    r = api.post("/api/scan/run", json={"policy_id": policy_id, "upload_id": upload_id, "mapping_id": mapping_id})
    r.raise_for_status()
    scan_id = r.json()["scan_id"]
    reads = []
    while True:
        t = time.perf_counter()
        body = api.get(f"/api/scan/{scan_id}").json()
        reads.append(time.perf_counter() - t)
        if body["status"] in ("completed", "failed"):
            return time.perf_counter() - started, body, reads
        time.sleep(0.005)


@contextmanager
def bench_system(tmp: Path, api_processes: int = 1) -> Iterator[tuple[System, httpx.Client]]:
    """A broker of its own (or KAFKA_BOOTSTRAP_SERVERS), the system on it and a client with room for large
    uploads; all stopped after."""
    broker = Broker(tmp)
    system = System(broker.start(), tmp / "system", SCANLEDGER_SCAN_SYNC_WAIT="30",
                    SCANLEDGER_API_PROCESSES=str(api_processes))
    try:
        system.start()
        with system.client() as api:
            api.timeout = 120
            yield system, api
    finally:
        system.stop()
        broker.stop()


def bench_policy(api: httpx.Client) -> str:
    """The seven rules of harness.data.RULES as a policy; its id."""
    return api.post("/api/policies", json={"name": "bench", "rules": RULES}).json()["id"]


def upload_mapped(api: httpx.Client, csv: bytes) -> tuple[str, str]:
    """The CSV uploaded and its mapping confirmed: (upload id, mapping id)."""
    upload_id = api.post("/api/upload", files={"file": ("b.csv", csv, "text/csv")}).json()["upload_id"]
    mapping = api.post("/api/mapping/confirm", json={"upload_id": upload_id, "mapping": MAPPING}).json()
    return upload_id, mapping["mapping_id"]


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else samples[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 250_000, 1_000_000],
                        help="records per scan (add 4000000 for the issue's growth figure: about 4 GB of RAM)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readers", type=int, default=20, help="concurrent API readers while the largest scan runs")
    parser.add_argument("--api-processes", type=int, default=1, help="SCANLEDGER_API_PROCESSES of the API")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_system(Path(tmp), args.api_processes) as (system, api):
        policy_id = bench_policy(api)
        print(f"{'records':>9} {'ledger s':>9} {'in-proc s':>9} {'ratio':>6} {'polars s':>9} "
              f"{'× polars':>8} {'violations':>10} {'µs/record':>9} {'status p99 ms':>13}  peak RSS MB (so far)")
        for n in args.sizes:
            csv = make_csv(n)
            upload_id, mapping_id = upload_mapped(api, csv)
            runs = [ledger_scan(api, policy_id, upload_id, mapping_id) for _ in range(args.repeat)]
            best, body, _ = min(runs, key=lambda r: r[0])
            reads = [t for run in runs for t in run[2]]
            local, found = min((in_process(csv) for _ in range(args.repeat)), key=lambda r: r[0])
            csv_path = Path(tmp) / f"{n}.csv"
            csv_path.write_bytes(csv)
            outside, polars_found = min((polars_scan(str(csv_path)) for _ in range(args.repeat)), key=lambda r: r[0])
            assert body["status"] == "completed" and body["violation_count"] == found == polars_found, \
                (body, found, polars_found)
            rss = ", ".join(f"{name} {peak_rss_mb(p.pid):,.0f}" for name, p in system.processes.items())
            print(f"{n:>9} {best:>9.3f} {local:>9.3f} {best / local:>6.1f} {outside:>9.3f} "
                  f"{best / outside:>8.1f} {found:>10} {best / n * 1e6:>9.2f} {p99(reads) * 1000:>13.1f}  {rss}",
                  flush=True)
        api_under_load(system, api, policy_id, upload_id, mapping_id, args.readers)
        replay_into = f"sqlite:///{Path(tmp) / 'replay.db'}"
        events, seconds = metered(system.cli("replay", "--into", replay_into).stderr)
        print(f"replay: {events} events in {seconds:.2f} s = {events / seconds:,.0f} events/s "
              f"(goal 200,000/s)", flush=True)


def api_under_load(system: System, api: httpx.Client, policy_id: str, upload_id: str, mapping_id: str,
                   clients: int) -> None:
    """`clients` readers of a scan's status, a page of its violations and the operations list (a dashboard
    over the last scan), idle and then while another scan of the same upload runs: the latency users
    see from the API while the ledger is busy."""
    _, last, _ = ledger_scan(api, policy_id, upload_id, mapping_id)
    # The API's CPU seconds per request answered (/proc): while the scan runs, its own POST and status
    # reads count as requests too.
    pid, per_request = system.processes["api"].pid, {}
    before = cpu_seconds(pid)
    with Readers(system.url, TOKEN, last["id"], clients) as idle:
        time.sleep(3)
    per_request[idle], before = (cpu_seconds(pid) - before) / idle.requests, cpu_seconds(pid)
    with Readers(system.url, TOKEN, last["id"], clients) as busy:
        seconds, _, polls = ledger_scan(api, policy_id, upload_id, mapping_id)
    per_request[busy] = (cpu_seconds(pid) - before) / (busy.requests + 1 + len(polls))
    for label, readers in (("idle", idle), (f"while a scan runs ({seconds:.1f} s)", busy)):
        p50, p99_ms, rate, errors = readers.summary()
        print(f"API, {clients} readers {label}: p50 {p50:.1f} ms, p99 {p99_ms:.1f} ms, {rate:,.0f} req/s, "
              f"{errors} errors, API CPU {per_request[readers] * 1e6:,.0f} µs/request", flush=True)


if __name__ == "__main__":
    main()
