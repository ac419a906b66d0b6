"""Where a compliance scan's time goes: py-spy on the worker, the projector and the API while one runs.

    pip install -e '.[bench]' && python -m bench.profile_scan [--records 1000000] [--out profiles]

Starts its own broker and system, uploads `--records` transactions, then samples every process for the
whole scan (POST to completed) and prints, per process, the share of its samples spent in each of the
product's functions (self time, and inclusive time of the top frames): what docs/performance.md reads.
The raw collapsed stacks stay in `--out` for a flame graph.
"""
from __future__ import annotations

import argparse
import collections
import subprocess
import tempfile
import time
from pathlib import Path

from bench.compliance_scan import bench_policy, bench_system, ledger_scan, make_csv, upload_mapped

OURS = ("services/", "streams/", "projections/", "api/", "cli/")


def summarize(raw: Path, top: int) -> list[str]:
    """The top functions by self samples and by inclusive samples (the product's frames only for the latter)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            if any(part in frame for part in OURS):
                inclusive[frame] += n
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples; self:"]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines += ["  inclusive (the product's frames):"]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--out", default="profiles")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--rate", type=int, default=250)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, bench_system(Path(tmp)) as (system, api):
        policy = bench_policy(api)
        upload_id, mapping_id = upload_mapped(api, make_csv(args.records))
        ledger_scan(api, policy, upload_id, mapping_id)  # warm: imports, caches
        spies = {name: subprocess.Popen(
            ["py-spy", "record", "--pid", str(p.pid), "--rate", str(args.rate), "--format", "raw",
             "--nonblocking", "-o", str(out / f"{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, p in system.processes.items()}
        time.sleep(1)  # the samplers attached
        seconds, body, _ = ledger_scan(api, policy, upload_id, mapping_id)
        time.sleep(0.5)  # the projector's last batch
        for spy in spies.values():
            spy.send_signal(2)  # SIGINT: py-spy writes what it sampled
        for spy in spies.values():
            spy.wait(60)
        # and `scanledger replay` of the log the scans left, as a user runs it
        subprocess.run(["py-spy", "record", "--rate", str(args.rate), "--format", "raw", "-o", str(out / "replay.txt"),
                        "--", *system.cli_args("replay", "--into", f"sqlite:///{Path(tmp) / 'replay.db'}")],
                       env=system.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        print(f"{args.records:,} records: POST to completed in {seconds:.2f} s, "
              f"{body['violation_count']:,} violations")
        for name in [*spies, "replay"]:
            print(f"{name}:")
            print("\n".join(summarize(out / f"{name}.txt", args.top)))

if __name__ == "__main__":
    main()
