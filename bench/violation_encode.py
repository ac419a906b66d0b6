"""The evaluator's CPU per violation, encoding and sealing, over the 1M bench scan's real violations
(issue 23): each checkout in turn, alternated (A B B A …), in a process of its own.

    python -m bench.violation_encode --trees /work/main /work/wt-encode7 [--records 1000000] [--rounds 2]

The upload is `bench.compliance_scan.make_csv`, its rules `harness.data.RULES` evaluated in one unit, the
violations cut into slices as `services.runners.compliance.run_unit` publishes them; a checkout's figures
are the process time of `encoded_violations` over every slice, then of `Chain.seal_all` over what it
encoded, µs a violation, best of `--repeat`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def measure(records: int, repeat: int) -> str:
    """This process's checkout: 'encode µs, seal µs, violations'."""
    from bench.compliance_scan import make_csv
    from harness.data import MAPPING, RULES
    from services.adapters.readers import read_table
    from services.domain.evaluation import encoded_violations, evaluate_unit
    from services.domain.ledger_chain import Chain
    from services.domain.planning import typed_for_scan, with_row_numbers
    from services.runners.compliance import STOP_CHECK_ROWS

    table = with_row_numbers(typed_for_scan(read_table(make_csv(records), "csv", 10**9, as_text=True), MAPPING))
    work = {"scan_id": "bench", "unit_id": "bench.u0", "rules": RULES, "mapping": MAPPING,
            "temporal_scale": "daily", "violation_ids": "clustered"}
    cause = {"id": "cmd", "subject": "bench", "workspaceid": "w"}
    slices = [(o.rule, o.violations.slice(at, STOP_CHECK_ROWS)) for o in evaluate_unit(table, work)
              if o.violations is not None for at in range(0, o.violations.num_rows, STOP_CHECK_ROWS)]
    count = sum(v.num_rows for _, v in slices)
    encode = seal = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        raws = [encoded_violations(cause, work, rule, v) for rule, v in slices]
        encode = min(encode, time.process_time() - started)
        chain, started = Chain("bench.u0#0"), time.process_time()
        for slice_raws in raws:
            chain.seal_all(slice_raws)
        seal = min(seal, time.process_time() - started)
    return f"{encode / count * 1e6:.2f} {seal / count * 1e6:.2f} {count}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", nargs="+", help="checkouts to measure in turn (none: this process's)")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the trees, every other one reversed")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one or not args.trees:
        print(measure(args.records, args.repeat), flush=True)
        return
    print(f"violation encode: {args.records:,} records; CPU µs a violation (best of {args.repeat})")
    for r in range(args.rounds):
        for tree in (args.trees if r % 2 == 0 else reversed(args.trees)):
            argv = [__file__, "--one", "--records", str(args.records), "--repeat", str(args.repeat)]
            # this file run with the tree first on the path (the tree need not have it)
            run = f"import runpy, sys; sys.argv = {argv!r}; runpy.run_path({__file__!r}, run_name='__main__')"
            out = subprocess.run([sys.executable, "-c", run], cwd=tree, check=True, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": tree}).stdout
            encode, seal, count = out.split()
            print(f"  {tree:<24} encode {encode} µs  seal {seal} µs  ({int(count):,} violations)", flush=True)


if __name__ == "__main__":
    main()
