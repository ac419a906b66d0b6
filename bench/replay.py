"""Replay benchmark: one log built once (1M-record compliance scans), then `scanledger replay --into` a fresh
database from each checkout in turn (A B B A ...): events/s, the replay's CPU seconds (its helpers included)
and the broker's, per run, so two versions compare on the same log in the same session.

    python -m bench.replay --trees /work/main /work/wt-replay2 [--scans 4] [--rounds 2] [--processes 1 2]
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
    """(events, wall s, CPU s of the replay and its helpers, CPU s of the busiest process) of one replay
    run from `tree`: on two idle cores the busiest one's CPU is about the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(system.cli_args("replay", "--into", into, *extra), cwd=tree, capture_output=True,
                         text=True, check=True, env={**system.env, "PYTHONPATH": tree})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    events, seconds = metered(out.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    helpers = [float(m.group("cpu")) for m in HELPER_CPU.finditer(out.stderr)]
    print(f"  the replay {cpu - sum(helpers):.2f} CPU s, its helpers {', '.join(f'{h:.2f}' for h in helpers)}")
    return events, seconds, cpu, max([cpu - sum(helpers), *helpers])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", nargs="+", required=True, help="checkouts to replay with, in turn")
    parser.add_argument("--scans", type=int, default=4, help="1M-record scans on the log (~128k violations each)")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="each tree replays this many times, A B B A")
    parser.add_argument("--processes", nargs="*", default=[], help="--processes for the trees, one each (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_system(Path(tmp)) as (system, api):
        policy_id = bench_policy(api)
        upload_id, mapping_id = upload_mapped(api, make_csv(args.records))
        for _ in range(args.scans):
            ledger_scan(api, policy_id, upload_id, mapping_id)
        broker = broker_pid(Path(tmp))
        runs = [i for r in range(args.rounds) for i in (range(len(args.trees)) if r % 2 == 0
                                                          else reversed(range(len(args.trees))))]
        print(f"{'tree':<24} {'events':>9} {'wall s':>7} {'events/s':>9} {'CPU s':>6} {'busiest CPU s':>13}"
              f" {'events/busiest CPU s':>20} {'broker CPU s':>12}")
        for n, i in enumerate(runs):
            tree = args.trees[i]
            processes = args.processes[i] if i < len(args.processes) else "0"
            extra = [] if processes == "0" else ["--processes", processes]
            broker_before = cpu_seconds(broker) if broker else 0.0
            events, wall, cpu, busiest = replay_once(system, tree, f"sqlite:///{Path(tmp) / f'replay-{n}.db'}", extra)
            broker_cpu = (cpu_seconds(broker) - broker_before) if broker else float("nan")
            label = f"{Path(tree).name}{'' if processes == '0' else f' -p {processes}'}"
            print(f"{label:<24} {events:>9,} {wall:>7.2f} {events / wall:>9,.0f} {cpu:>6.2f} {busiest:>13.2f}"
                  f" {events / busiest:>20,.0f} {broker_cpu:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
