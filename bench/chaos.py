"""Chaos benchmark (issue 24): rounds of random faults under a mixed workload for --minutes.

    python -m bench.chaos --minutes 3                 # a short run: try this first
    python -m bench.chaos                             # 30 minutes of rounds, a random seed (printed)
    python -m bench.chaos --minutes 30 --seed 7 --json chaos.json

The system: three streams workers, two projectors and two API processes on one database (the
clients take turns between the APIs) on a local 3-node KRaft cluster (topics on 3 replicas, 2 in
sync for a write), all started by this run. The workload: a compliance scan, a monitor scan of the
workspace, a catalog sync and a sensitive-data scan, run once unfaulted (the reference, checked
against independent answers) and --baseline-runs - 1 more times (the unfaulted settle times).
Then rounds until --minutes have passed: each POSTs the workload, injects 1-3 faults drawn from
--seed at random points mid-scan (SIGKILL of a worker, a projector, an API process or one broker
node of three; every process SIGTERMed and started again), waits up to --deadline for every scan
to be final and compares each with the reference. At the end, the whole log replayed into another
database must equal the live read models. harness/faults/chaos.py says how each fault is chosen.

Prints each round as it ends, then: faults by kind (planned, injected, landed with scans in flight,
how their victims came back), scans by kind (final, exact, stalled, settle median and max against the
unfaulted median), the rounds, and replay against live. The report of every round that was not exact
goes to --log. Exit status 1 if any round was not exact or replay differed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from harness.faults.chaos import DEADLINE_S, FAULTS, Chaos, Round
from harness.faults.knobs import ROWS


def fmt_s(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "-"


def markdown(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def fault_table(rounds: list[Round]) -> str:
    rows = []
    for kind in FAULTS:
        planned = [f for r in rounds for f in r.faults if f.kind == kind]
        injected = [f for f in planned if f.injected]
        later = [f for f in injected if f.back_s is not None]
        rows.append([kind, len(planned), len(injected), sum(1 for f in injected if f.in_flight),
                     "-" if kind == "system_restart" else len(later),
                     "-" if kind == "system_restart" else len(injected) - len(later)])
    all_planned = [f for r in rounds for f in r.faults]
    all_injected = [f for f in all_planned if f.injected]
    rows.append(["all", len(all_planned), len(all_injected), sum(1 for f in all_injected if f.in_flight), "", ""])
    return markdown(["fault", "planned", "injected", "mid-scan", "back after a few s", "back after the round"], rows)


def scan_table(rounds: list[Round], chaos: Chaos) -> str:
    rows = []
    for label in chaos.workload.kinds:
        ran = [r for r in rounds if label in r.scans]
        settles = [r.settle_by[label] for r in ran if r.settle_by.get(label) is not None]
        base = chaos.baseline_by.get(label) or []
        median = statistics.median(settles) if settles else None
        base_median = statistics.median(base) if base else None
        rows.append([label, len(ran), len(settles), sum(1 for r in ran if r.exact_by.get(label)),
                     sum(1 for r in ran if r.settle_by.get(label) is not None and not r.exact_by.get(label)),
                     len(ran) - len(settles), fmt_s(median), fmt_s(max(settles) if settles else None),
                     fmt_s(base_median), f"{median / base_median:.1f}x" if median and base_median else "-"])
    return markdown(["scan", "scans", "final", "exact", "not exact", "stalled", "settle median", "settle max",
                     "unfaulted median", "median / unfaulted"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="minutes of rounds (default 30; setup and the "
                        "final replay come on top)")
    parser.add_argument("--seed", type=int, default=None, help="the faults' seed (default: drawn, and printed)")
    parser.add_argument("--rounds", type=int, default=None, help="stop after this many rounds (default: --minutes)")
    parser.add_argument("--deadline", type=float, default=DEADLINE_S,
                        help=f"seconds from the POST for a round's scans to be final (default {DEADLINE_S:.0f})")
    parser.add_argument("--rows", type=int, default=ROWS, help=f"records of the compliance scan (default {ROWS})")
    parser.add_argument("--baseline-runs", type=int, default=2,
                        help="unfaulted runs, the reference included (default 2)")
    parser.add_argument("--log", default="bench-chaos.log", help="reports of rounds that were not exact")
    parser.add_argument("--json", help="write every round's result here")
    parser.add_argument("--keep", help="run in this directory and keep it (every process's log, the cluster's data)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    log_file = open(args.log, "a")  # noqa: SIM115 (written to until the process ends)

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def report(msg: str) -> None:
        log_file.write(f"[{time.strftime('%H:%M:%S')}] seed {seed}: {msg}\n\n")
        log_file.flush()
        say(f"    (report in {args.log})")

    say(f"chaos: seed {seed}, {args.minutes:g} minutes of rounds, deadline {args.deadline:.0f} s")
    rounds: list[Round] = []
    replay: list[str] = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            tmp_name = args.keep
        else:
            tmp_name = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-chaos-"))
        chaos = Chaos(Path(tmp_name), seed, args.deadline, args.rows, say=say)
        started = time.monotonic()
        try:
            try:
                chaos.setup()
            except Exception as exc:
                report(f"setup failed: {exc!r}")
                raise SystemExit(f"chaos: setup failed: {exc}") from exc
            say(f"reference run exact: settle {fmt_s(chaos.baseline_s[0])} "
                f"({', '.join(f'{k} {fmt_s(v[0])}' for k, v in chaos.baseline_by.items())})")
            for j in range(1, args.baseline_runs):
                run = chaos.unfaulted(j)
                say(f"unfaulted run {j}: {'exact' if run.exact else 'NOT EXACT'}, settle {fmt_s(run.settle_s)}")
                if not run.exact:
                    report(f"unfaulted run {j}:\n{run.summary()}")
            setup_s = time.monotonic() - started
            rounds_started = time.monotonic()
            while time.monotonic() - rounds_started < args.minutes * 60 and (args.rounds is None
                                                                                or len(rounds) < args.rounds):
                rnd = chaos.round(len(rounds) + 1)
                rounds.append(rnd)
                state = "exact" if rnd.exact else "STALLED" if rnd.stalled else "NOT EXACT"
                say(f"round {rnd.index}: {state}, settle {fmt_s(rnd.settle_s)}, "
                    f"{sum(f.injected for f in rnd.faults)} of {len(rnd.faults)} faults injected"
                    + (f", {len(rnd.restarts)} exit(s) by itself" if rnd.restarts else ""))
                for exit_ in rnd.restarts:
                    say(f"    {exit_.splitlines()[0]}")
                if not rnd.exact:
                    report(rnd.summary())
                elif rnd.restarts or any(n.startswith("system restart") for n in rnd.notes):
                    # allowed (a watchdog's exit, restarted; a group left late for a reason of Kafka's), worth reading
                    report(f"round {rnd.index} (exact):\n" + "\n".join(
                        [*rnd.restarts, *(n for n in rnd.notes if n.startswith("system restart"))]))
            rounds_s = time.monotonic() - rounds_started
            replay = chaos.finish()
            if replay:
                report("replay differs from live:\n" + "\n".join(replay))
        finally:
            chaos.teardown()
    exact = sum(1 for r in rounds if r.exact)
    settles = [r.settle_s for r in rounds if r.settle_s is not None]
    base = statistics.median(chaos.baseline_s) if chaos.baseline_s else None
    print(f"\nChaos, seed {seed}: {len(rounds)} rounds in {rounds_s / 60:.1f} min (setup {setup_s:.0f} s); 3 workers, "
          f"2 projectors, 2 APIs on a 3-node cluster (RF 3, min.insync 2); each round a {args.rows}-record compliance "
          f"scan, a monitor scan, a catalog sync and a sensitive-data scan; deadline {args.deadline:.0f} s\n")
    print(fault_table(rounds) + "\n")
    print(scan_table(rounds, chaos) + "\n")
    print(f"rounds: {len(rounds)}, exact {exact}, stalled {sum(1 for r in rounds if r.stalled)}, "
          f"processes that exited by themselves (restarted) {sum(len(r.restarts) for r in rounds)}; "
          f"round settle median {fmt_s(statistics.median(settles) if settles else None)}, "
          f"max {fmt_s(max(settles) if settles else None)}, unfaulted median {fmt_s(base)} "
          f"({len(chaos.baseline_s)} runs)")
    print("replay of the whole log: " + ("equal to live" if not replay else f"DIFFERS ({len(replay)} tables)"))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seed": seed, "baseline_s": chaos.baseline_s, "baseline_by": chaos.baseline_by, "replay": replay,
            "faults": dict(Counter(f.kind for r in rounds for f in r.faults if f.injected)),
            "rounds": [{"index": r.index, "exact": r.exact, "stalled": r.stalled, "settle_s": r.settle_s,
                        "settle_by": r.settle_by, "exact_by": r.exact_by, "faults": [str(f) for f in r.faults],
                        "problems": r.problems, "notes": r.notes, "restarts": len(r.restarts)} for r in rounds]},
            indent=2, default=str))
    if exact < len(rounds) or replay:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
