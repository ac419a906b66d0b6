"""CPU seconds each process spends on a compliance scan, the local broker's by thread kind:
what the 2-core machine's scan time is made of (docs/performance.md, "the broker's CPU").

    pip install -e '.[bench]' && python -m bench.scan_cpu [--records 1000000] [--repeat 3] [--jfr out.jfr]

Starts its own broker and system, then runs 1 + `--repeat` scans and prints, per scan, the seconds POST →
completed and the CPU seconds of the worker, projector, API and broker (/proc): the first on a cold broker
(what `bench.compliance_scan --repeat 1` measures: the JIT compiles then), the medians of the others, the
ratios to polars-from-CSV and the broker's CPU by thread. `--jfr` records Java Flight Recorder on the
broker during the last scan (`jfr print --events jdk.ExecutionSample`).
"""
from __future__ import annotations

import argparse
import collections
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.api_load import cpu_seconds
from bench.compliance_scan import bench_policy, bench_system, ledger_scan, make_csv, upload_mapped
from bench.polars_baseline import polars_scan

_TICK = 100.0  # USER_HZ of /proc's stat files
_DIGITS = re.compile(r"\d+")
_NID = re.compile(r'^"([^"]+)".*? nid=0x([0-9a-f]+)', re.M)


def broker_pids(tmp: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted((tmp / "broker").rglob("broker.pid"))]


def java_names(pid: int) -> dict[int, str]:
    """Thread id → the JVM's name for it (/proc's comm keeps only 15 characters)."""
    dump = subprocess.run(["jcmd", str(pid), "Thread.print"], capture_output=True, text=True).stdout
    return {int(nid, 16): name for name, nid in _NID.findall(dump)}


def threads(pid: int, names: dict[int, str]) -> collections.Counter[str]:
    """CPU seconds so far (user, system) per thread kind: the thread's name without its numbers."""
    used: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = names.get(int(task.name)) or (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = _DIGITS.sub("#", name)
        used[kind + " (user)"] += int(fields[11]) / _TICK
        used[kind + " (sys)"] += int(fields[12]) / _TICK
    return used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jfr", help="record the broker with Java Flight Recorder during the last scan")
    args = parser.parse_args()
    csv = make_csv(args.records)
    with tempfile.TemporaryDirectory() as tmp, bench_system(Path(tmp)) as (system, api):
        csv_path = Path(tmp) / "scan.csv"
        csv_path.write_bytes(csv)
        policy = bench_policy(api)
        upload_id, mapping_id = upload_mapped(api, csv)
        pids = {name: p.pid for name, p in system.processes.items()}
        brokers = broker_pids(Path(tmp))
        names = {b: java_names(b) for b in brokers}

        def broker_threads() -> collections.Counter[str]:
            return sum((threads(b, names[b]) for b in brokers), collections.Counter())
        rows, polars, per_thread = [], [], collections.Counter()
        for i in range(1 + args.repeat):
            jfr = args.jfr if i == args.repeat else None
            if jfr:
                subprocess.run(["jcmd", str(brokers[0]), "JFR.start", "name=scan", "settings=profile",
                                f"filename={jfr}"], check=True, capture_output=True)
            before = {n: cpu_seconds(p) for n, p in pids.items()} | {"broker": sum(map(cpu_seconds, brokers))}
            threads_before = broker_threads()
            seconds, body, _ = ledger_scan(api, policy, upload_id, mapping_id)
            after = {n: cpu_seconds(p) for n, p in pids.items()} | {"broker": sum(map(cpu_seconds, brokers))}
            if i:
                per_thread.update(broker_threads() - threads_before)
            if jfr:
                subprocess.run(["jcmd", str(brokers[0]), "JFR.stop", "name=scan"], check=True, capture_output=True)
            assert body["status"] == "completed", body
            polars_s, polars_found = polars_scan(str(csv_path))
            assert body["violation_count"] == polars_found, (body, polars_found)
            polars.append(polars_s)
            rows.append({"scan s": seconds,
                         **{f"{n} cpu": after[n] - before[n] for n in after}})
            print("first  " if not i else "       ", "  ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()), flush=True)
        print("median " + "  ".join(f"{k} {statistics.median(r[k] for r in rows[1:]):.3f}" for k in rows[0]))
        # polars at its quickest: the machine's other load slows it as much as the ledger
        print(f"polars {min(polars):.3f} s; × polars: first {rows[0]['scan s'] / min(polars):.2f}, "
              f"median {statistics.median(r['scan s'] for r in rows[1:]) / min(polars):.2f}")
        print("broker threads, CPU s per scan:")
        for name, s in per_thread.most_common(20):
            print(f"  {s / args.repeat:7.3f}  {name}")


if __name__ == "__main__":
    main()
