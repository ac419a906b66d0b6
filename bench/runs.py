"""Monitor scans and run operations: how fast, and how fast the dashboards answer.

    python -m bench.runs [--assets 20] [--rows 200000] [--runs 300]

Starts its own local broker (or uses KAFKA_BOOTSTRAP_SERVERS), worker, projector and API and prints:
- a workspace monitor scan over N CSV assets of R rows with 4 monitors each: POST to
  finished, beside the same monitors evaluated in-process (the ratio is the ledger's cost),
  and the p99 of GET /api/assets/scan-status while it runs;
- GET /api/operations (filtered, sorted, paged) p99 with that many runs in the list;
- abort latency: PUT abort on a heavy compliance scan in flight until the run reads aborted.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from harness.system import Broker, System
from services.adapters.connectors.datastores import read_asset
from services.domain.monitors import evaluate_monitor, parse_monitor

MONITORS = [
    {"name": "rows", "type": "record_count", "params": {"min": 1}},
    {"name": "ids unique", "type": "uniqueness", "params": {"columns": ["id"]}},
    {"name": "amount range", "type": "value_range", "params": {"column": "amount", "min": 0, "max": 900}},
    {"name": "country", "type": "allowed_values", "params": {"column": "country", "values": ["US", "DE", "FR"]}},
]


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000 if len(samples) > 1 else samples[0] * 1000


def write_assets(root: Path, n: int, rows: int) -> None:
    rng = np.random.default_rng(3)
    for i in range(n):
        table = pa.table({"id": np.arange(rows), "amount": np.round(rng.uniform(0, 1000, rows), 2),
                          "country": rng.choice(["US", "DE", "FR", "GB"], rows, p=[0.5, 0.3, 0.19, 0.01])})
        pacsv.write_csv(table, str(root / f"part-{i:03d}.csv"))


def in_process(root: Path, names: list[str]) -> float:
    started = time.perf_counter()
    now = datetime.now(UTC)
    for name in names:
        table = read_asset("local_dir", root, name, 10**9)
        for i, m in enumerate(MONITORS):
            evaluate_monitor(table, parse_monitor({"id": str(i), **m}), now)
    return time.perf_counter() - started


def wait(api, path: str, done) -> dict:
    while True:
        body = api.get(path).json()
        if done(body):
            return body
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        (root / "lake").mkdir(parents=True)
        write_assets(root / "lake", args.assets, args.rows)
        broker = Broker(Path(tmp))
        system = System(broker.start(), Path(tmp) / "system", SCANLEDGER_DATASTORE_ROOT=str(root))
        try:
            system.start()
            with system.client() as api:
                api.timeout = 120
                store = api.post("/api/datastores", json={"name": "lake", "type": "local_dir", "path": "lake"}).json()
                sync = api.post(f"/api/datastores/{store['id']}/sync").json()
                wait(api, f"/api/scan/status/{sync['scan_id']}", lambda b: b["data"]["status"] != "running")
                assets = api.get("/api/assets").json()["items"]
                for asset in assets:
                    for m in MONITORS:
                        api.post(f"/api/assets/{asset['id']}/monitors", json=m).raise_for_status()

                started = time.perf_counter()
                execution = api.post("/api/scan/run").json()["data"]["executionId"]
                reads = []
                while True:
                    t = time.perf_counter()
                    api.get("/api/assets/scan-status").raise_for_status()
                    reads.append(time.perf_counter() - t)
                    if api.get(f"/api/scan/status/{execution}").json()["data"]["status"] != "running":
                        break
                    time.sleep(0.005)
                ledger = time.perf_counter() - started
                local = in_process(root / "lake", [a["name"] for a in assets])
                print(f"monitor scan: {args.assets} assets x {args.rows:,} rows x {len(MONITORS)} monitors: "
                      f"ledger {ledger:.2f} s, in-process {local:.2f} s, ratio {ledger / local:.1f}; "
                      f"scan-status p99 while running {p99(reads):.1f} ms", flush=True)

                for _ in range(args.runs):  # fill the Activity list
                    api.post(f"/api/datastores/{store['id']}/sync").raise_for_status()
                wait(api, "/api/operations?finished=false", lambda b: b["total"] == 0)
                total = api.get("/api/operations").json()["total"]
                queries = [{"operation_type": "catalog", "result": ["success", "failure"], "sort_created": "desc"},
                           {"sort_duration": "desc", "size": 100}, {"container": assets[0]["id"], "page": 2}]
                latencies = []
                for i in range(300):
                    t = time.perf_counter()
                    api.get("/api/operations", params=queries[i % len(queries)]).raise_for_status()
                    latencies.append(time.perf_counter() - t)
                print(f"operations list: {total} runs, p99 {p99(latencies):.1f} ms "
                      f"(median {statistics.median(latencies) * 1000:.1f} ms)", flush=True)

                heavy = [{"id": f"h{i}", "name": f"h{i}", "type": "threshold", "severity": "low",
                          "params": {"field": "amount", "op": "gt", "value": -1}} for i in range(20)]
                policy = api.post("/api/policies", json={"name": "heavy", "rules": heavy}).json()
                rows = "\n".join(f"T{i},A{i % 100},{i % 500}.5,USD,2024-01-01T00:00:00Z" for i in range(200_000))
                csv = ("Txn ID,Account ID,Amount,Currency,Date\n" + rows).encode()
                up = api.post("/api/upload", files={"file": ("h.csv", csv, "text/csv")}).json()
                mapping = api.post("/api/mapping/confirm", json={"upload_id": up["upload_id"], "mapping": {
                    "amount": "Amount", "account": "Account ID", "timestamp": "Date"}}).json()
                scan = api.post("/api/scan/run", headers={"Prefer": "respond-async"}, json={
                    "policy_id": policy["id"], "upload_id": up["upload_id"],
                    "mapping_id": mapping["mapping_id"]}).json()["scan_id"]
                op = wait(api, "/api/operations?finished=false", lambda b: b["total"] == 1)["items"][0]["id"]
                wait(api, f"/api/operations/{op}", lambda b: b["status"]["anomalies_identified"] > 0)
                t = time.perf_counter()
                api.put(f"/api/operations/abort/{op}").raise_for_status()
                wait(api, f"/api/operations/{op}", lambda b: b["result"] == "aborted")
                acked = time.perf_counter() - t
                time.sleep(1)
                kept = api.get(f"/api/scan/{scan}/violations", params={"size": 1}).json()["total"]
                print(f"abort: run aborted {acked * 1000:.0f} ms after PUT; {kept:,} of {200_000 * 20:,} "
                      f"violations found before it stopped", flush=True)
        finally:
            system.stop()
            broker.stop()


if __name__ == "__main__":
    main()
