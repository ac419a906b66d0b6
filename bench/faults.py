"""Fault benchmark: the trials of tests/faults, N at a time, outside pytest.

    python -m bench.faults --trials 10 --kinds all,worker_kill:50     # the fault matrix of issue 9
    python -m bench.faults --trials 3 --kinds worker_kill,poison --json results.json

Kinds: worker_kill, up_ctrl_c, projector_kill, api_term, broker_stop, broker_node_kill, two_workers, scale_out,
poison
(`all` is every kind; `kind:N` sets that kind's number of trials). Each kind runs as one campaign on a system of its
own (on KAFKA_BOOTSTRAP_SERVERS if set, else a local broker this run starts): a workload, an
unfaulted reference run, `--baseline-runs - 1` more unfaulted runs (their median is the
baseline), then the trials. Prints per kind: trials, how many faults landed mid-scan, settled
(every scan final before the deadline), exact (settled and equal to the reference, replay equal
to live), stalled (not final by the deadline), processes that exited by themselves and were
restarted, and the time from the POST to the last scan final (median, max) against the
baseline. The report of every trial that was not exact goes to --log.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import faults
from harness.system import Broker


def parse_kinds(spec: str, trials: int) -> list[tuple[str, int]]:
    """"a,b:5" -> [(a, trials), (b, 5)]; "all" is every kind, and a later kind:N sets its count."""
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, n = item.partition(":")
        if name == "all":
            out.update({k: out.get(k, trials) for k in faults.KINDS})
            continue
        if name not in faults.KINDS:
            raise SystemExit(f"unknown kind {name!r}; kinds: {', '.join(faults.KINDS)}")
        out[name] = int(n) if n else trials
    return list(out.items())


def run_kind(kind: str, n: int, bootstrap: str, tmp: Path, baseline_runs: int, deadline_s: float, say) -> dict:
    campaign = faults.KINDS[kind](bootstrap, tmp / kind, deadline_s=deadline_s)
    (tmp / kind).mkdir(parents=True, exist_ok=True)
    results: list[faults.Trial] = []
    unfaulted: list[faults.Trial] = []
    error = None
    try:
        campaign.setup()
        extra_baselines = max(0, baseline_runs - 1)
        for i in range(1, n + 1):
            trial = campaign.trial(i)
            results.append(trial)
            state = "exact" if trial.exact else "STALLED" if trial.stalled else "NOT EXACT"
            settle = f"{trial.settle_s:.1f}s" if trial.settle_s is not None else "-"
            say(f"{kind} {i}/{n}: {state}, settle {settle}, landed {trial.landed}"
                + (f", {len(trial.restarts)} restart(s)" if trial.restarts else ""))
            if not trial.exact:
                say(trial.summary(), detail=True)
            # the extra unfaulted runs are spread over the campaign (after the first trials)
            if extra_baselines and i in _spread(n, extra_baselines):
                run = campaign.unfaulted(100 + i)
                unfaulted.append(run)
                if not run.exact:
                    say(f"{kind}: an unfaulted run was not exact:\n{run.summary()}", detail=True)
        if n == 0:
            for j in range(extra_baselines):
                unfaulted.append(campaign.unfaulted(100 + j))
    except Exception as exc:  # a campaign that cannot start is reported, and the others still run
        import traceback

        error = f"{exc!r}\n{traceback.format_exc()[-4000:]}"
        say(f"{kind}: campaign failed: {error}", detail=True)
    finally:
        campaign.teardown()
    baselines = campaign.all_baselines() if hasattr(campaign, "all_baselines") else campaign.baseline_s
    settles = [t.settle_s for t in results if t.settled and t.settle_s is not None]
    return {
        "kind": kind,
        "trials": len(results),
        "landed": sum(1 for t in results if t.landed),
        "landed_known": sum(1 for t in results if t.landed is not None),
        "settled": sum(1 for t in results if t.settled),
        "exact": sum(1 for t in results if t.exact),
        "stalled": sum(1 for t in results if t.stalled),
        "restarts": sum(len(t.restarts) for t in results),
        "settle_median_s": statistics.median(settles) if settles else None,
        "settle_max_s": max(settles) if settles else None,
        "baseline_s": statistics.median(baselines) if baselines else None,
        "unfaulted_runs": len(baselines) + sum(1 for u in unfaulted if not u.exact),
        "unfaulted_not_exact": sum(1 for u in unfaulted if not u.exact),
        "error": error,
        "details": [{"index": t.index, "exact": t.exact, "stalled": t.stalled, "settle_s": t.settle_s,
                     "landed": t.landed, "scans": t.scans, "notes": t.notes, "problems": t.problems,
                     "restarts": len(t.restarts)} for t in results],
    }


def _spread(n: int, k: int) -> set[int]:
    return {max(1, round((j + 1) * n / (k + 1))) for j in range(k)}


def fmt_s(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "-"


def table(rows: list[dict]) -> str:
    head = ["kind", "trials", "landed", "settled", "exact", "stalled", "restarts", "settle median", "settle max",
            "unfaulted", "median / unfaulted"]
    lines = [head]
    for r in rows:
        ratio = (f"{r['settle_median_s'] / r['baseline_s']:.1f}x"
                 if r["settle_median_s"] is not None and r["baseline_s"] else "-")
        landed = f"{r['landed']}" if r["landed_known"] else "-"
        lines.append([r["kind"], str(r["trials"]), landed, str(r["settled"]), str(r["exact"]), str(r["stalled"]),
                      str(r["restarts"]), fmt_s(r["settle_median_s"]), fmt_s(r["settle_max_s"]),
                      fmt_s(r["baseline_s"]) + (f" ({r['unfaulted_not_exact']} not exact)"
                                                if r["unfaulted_not_exact"] else ""), ratio])
        if r["error"]:
            lines.append([f"  ({r['kind']} campaign failed: {r['error'].splitlines()[0][:100]})"] + [""] * 10)
    table_rows = [row for row in lines if not row[0].startswith("  (")]
    widths = [max(len(row[i]) for row in table_rows if len(row) > i) for i in range(len(head))]
    out = []
    for row in lines:
        if row[0].startswith("  ("):
            out.append(row[0])
            continue
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if row is head:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="trials per kind (default 10)")
    parser.add_argument("--kinds", default="all",
                        help="comma-separated kinds, each optionally kind:N; `all` is every kind (default)")
    parser.add_argument("--baseline-runs", type=int, default=3,
                        help="unfaulted runs per campaign, the reference included (default 3)")
    parser.add_argument("--deadline", type=float, default=faults.DEADLINE_S,
                        help=f"seconds from the POST for a trial's scans to be final (default {faults.DEADLINE_S:.0f})")
    parser.add_argument("--json", help="write every trial's result here")
    parser.add_argument("--log", default="bench-faults.log", help="reports of trials that were not exact")
    args = parser.parse_args()
    kinds = parse_kinds(args.kinds, args.trials)

    log_file = open(args.log, "a")  # noqa: SIM115 (written to until the process ends)

    def say(msg: str, detail: bool = False) -> None:
        if detail:
            log_file.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n\n")
            log_file.flush()
            print(f"    (report in {args.log})", file=sys.stderr, flush=True)
        else:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp_name:
        tmp = Path(tmp_name)
        broker = Broker(tmp / "kafka")
        bootstrap = broker.start()
        rows = []
        started = time.monotonic()
        try:
            for kind, n in kinds:
                rows_n = faults.KINDS[kind].rows
                say(f"{kind}: {n} trials ({rows_n}-record compliance scan in units of {faults.unit_records(rows_n)})")
                rows.append(run_kind(kind, n, bootstrap, tmp, args.baseline_runs, args.deadline, say))
        finally:
            broker.stop()
    bigger = "".join(f", {faults.KINDS[k].rows} for {k}" for k, _ in kinds if faults.KINDS[k].rows != faults.ROWS)
    print(f"\nFault trials: a compliance scan of {faults.ROWS} records{bigger} ({len(faults.data.RULES)} rules, "
          f"10 units) and a {faults.MONITOR_ASSETS + 1}-asset monitor scan per trial; deadline {args.deadline:.0f} s; "
          f"{time.monotonic() - started:.0f} s in all\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
