"""Replay benchmark: one log built once (1M-record compliance scans), then `scanledger replay --into` a fresh
database from each checkout in turn (A B B A ...): events/s, the replay's CPU seconds (its helpers included)
and the broker's, per run, so two versions compare on the same log in the same session.

    python -m bench.replay --trees /work/main /work/wt-replay2 [--scans 4] [--rounds 2] [--helpers - 2]
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import tempfile
from pathlib import Path

from bench.api_load import cpu_seconds
from bench.compliance_scan import bench_policy, bench_system, ledger_scan, make_csv, metered, upload_mapped


def broker_pid(tmp: Path) -> int | None:
    """The local broker's JVM (its files are under the bench's directory), or None (an outside broker)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"java" in cmdline and str(tmp).encode() in cmdline:
            return int(pid)
    return None


HELPER_CPU = re.compile(r"replay helper: .* in [\d.]+ s, (?P<cpu>[\d.]+) CPU s")


def replay_once(system, tree: str, into: str, extra: list[str]) -> tuple[int, float, float, float]:
    """(events, wall s, CPU s of the replay and its helpers, the least wall time they could take) of one
    replay run from `tree`: on idle cores, the most of the busiest process's CPU and the total spread
    over the cores (a figure the other load on a shared machine moves far less than the wall time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(system.cli_args("replay", "--into", into, *extra), cwd=tree, capture_output=True,
                         text=True, check=True, env={**system.env, "PYTHONPATH": tree})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    events, seconds = metered(out.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    helpers = [float(m.group("cpu")) for m in HELPER_CPU.finditer(out.stderr)]
    print(f"  the replay {cpu - sum(helpers):.2f} CPU s, its helpers {', '.join(f'{h:.2f}' for h in helpers)}")
    return events, seconds, cpu, max([cpu - sum(helpers), *helpers, cpu / (os.cpu_count() or 1)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", nargs="+", required=True, help="checkouts to replay with, in turn")
    parser.add_argument("--scans", type=int, default=4, help="1M-record scans on the log (~128k violations each)")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="each tree replays this many times, A B B A")
    parser.add_argument("--helpers", nargs="*", default=[], help="replay --helpers per tree (-: not given)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_system(Path(tmp)) as (system, api):
        policy_id = bench_policy(api)
        upload_id, mapping_id = upload_mapped(api, make_csv(args.records))
        for _ in range(args.scans):
            ledger_scan(api, policy_id, upload_id, mapping_id)
        broker = broker_pid(Path(tmp))
        runs = [i for r in range(args.rounds) for i in (range(len(args.trees)) if r % 2 == 0
                                                          else reversed(range(len(args.trees))))]
        print(f"{'tree':<24} {'events':>9} {'wall s':>7} {'events/s':>9} {'CPU s':>6} {'idle-cores s':>12}"
              f" {'events/idle-cores s':>19} {'broker CPU s':>12}")
        for n, i in enumerate(runs):
            tree = args.trees[i]
            helpers = args.helpers[i] if i < len(args.helpers) else "-"
            extra = [] if helpers == "-" else ["--helpers", helpers]
            broker_before = cpu_seconds(broker) if broker else 0.0
            events, wall, cpu, least = replay_once(system, tree, f"sqlite:///{Path(tmp) / f'replay-{n}.db'}", extra)
            broker_cpu = (cpu_seconds(broker) - broker_before) if broker else float("nan")
            label = f"{Path(tree).name}{'' if helpers == '-' else f' --helpers {helpers}'}"
            print(f"{label:<24} {events:>9,} {wall:>7.2f} {events / wall:>9,.0f} {cpu:>6.2f} {least:>12.2f}"
                  f" {events / least:>19,.0f} {broker_cpu:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
