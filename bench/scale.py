"""Scale benchmark (issue 24): a compliance scan's throughput with 1, 2 and 3 streams workers in one
consumer group, on this machine, and replay's throughput into the read models.

    python -m bench.scale                                   # 300,000 records; 1, 2, 3 workers; 3 rounds
    python -m bench.scale --records 100000 --repeat 2 --workers 1 2
    python -m bench.scale --database-url postgresql://scanledger@127.0.0.1:5432/scanledger \\
        --replay-into postgresql://scanledger@127.0.0.1:5432/replay   # once PostgreSQL is supported

One system (a local broker of its own, or KAFKA_BOOTSTRAP_SERVERS; a projector; an API; the
workers) on one upload of --records transactions (bench.compliance_scan.make_csv) split into --units
units, the seven rules of harness.data. A warm-up scan, then --repeat rounds in which each worker
count of --workers runs one scan in turn (the group is grown by starting workers and shrunk by
SIGTERM, each change waited out until the group is stable with that many members), so background
load on the machine weighs on every count alike. A scan is timed from its POST to GET /api/scan/{id}
saying completed, which it says only once every violation is readable; its violation count must equal
the rules evaluated in this process on the same upload.

Prints, per worker count: the best and median time, records/s (best), the ratio to one worker
measured in the same run, the parallel efficiency (that ratio over min(workers, cores)), and the CPU
seconds each process spent during the scan (workers, projector, API, broker), read from /proc: the
records per second of the workers' CPU is the per-core rate, and the cores busy say how much of the
machine the run took; and where the time went (median per worker count), from the record times of each
scan's history: the command written, the plan (to scan.started), the units (to the last unit report),
the finish (to scan.finished) and the projection (to the API saying completed). Then replay of the
whole log (every scan of the run) into --replay-into (default: a SQLite file): events/s.

--database-url sets SCANLEDGER_DATABASE_URL for every process (the read models, the configuration):
the hook for PostgreSQL. A system that refuses the URL (PostgreSQL is not supported yet on this
branch) makes the bench stop with the first process's last words.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from confluent_kafka.admin import AdminClient

from bench.compliance_scan import in_process, make_csv, metered
from harness.data import MAPPING, RULES
from harness.faults.probes import QUIET
from harness.faults.systems import Procs
from harness.system import free_port
from services.domain import contracts as c
from services.settings import Settings

WORKERS = ("worker", "worker2", "worker3", "worker4", "worker5", "worker6")
SCAN_DEADLINE_S = 900  # a scan not completed by then ends the bench with what is known


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds a process has used (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_group(settings: Settings, n: int, timeout_s: float = 180) -> None:
    """Until the streams group has exactly n members and is stable."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, **QUIET})
    group, seen = settings.streams_group, None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            desc = admin.describe_consumer_groups([group])[group].result(timeout=5)
            seen = (len(desc.members), desc.state.name)
            if seen == (n, "STABLE"):
                return
        time.sleep(0.3)
    raise SystemExit(f"scale: the streams group did not settle at {n} members in {timeout_s:.0f} s (last {seen})")


class Bench:
    def __init__(self, tmp: Path, records: int, units: int, database_url: str | None):
        self.tmp = tmp
        self.broker: Settings | None = None
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from cli import localbroker

            self.broker = Settings(data_dir=tmp / "kafka", broker_port=free_port(2))
            localbroker.start(self.broker)
            bootstrap = self.broker.bootstrap_servers
        # two rule groups (by account; by Txn ID) split into records / unit_records units each
        unit_records = max(1, 2 * records // units)
        env = {"SCANLEDGER_UNIT_RECORDS": str(unit_records)}
        if database_url:
            env["SCANLEDGER_DATABASE_URL"] = database_url
        self.system = Procs(bootstrap, tmp / "system", rows=records, **env)

    def start(self) -> None:
        try:
            self.system.start()
        except RuntimeError as exc:
            raise SystemExit(f"scale: the system did not start:\n{str(exc)[-3000:]}") from None

    def broker_pid(self) -> int | None:
        if self.broker is None:
            return None
        from cli import localbroker

        return localbroker.status(self.broker)["pid"]

    def set_workers(self, n: int) -> None:
        for name in WORKERS[:n]:
            process = self.system.processes.get(name)
            if process is None or process.poll() is not None:
                self.system.spawn(name, "worker")
        for name in WORKERS[n:]:
            process = self.system.processes.get(name)
            if process is not None and process.poll() is None:
                problem = self.system.stop_cleanly(name)
                if problem:
                    print(f"scale: {problem}", file=sys.stderr)
        wait_group(self.system.settings, n)
        time.sleep(2)  # the new assignment's table recovery

    def pids(self) -> dict[str, int | None]:
        out = {name: p.pid for name, p in self.system.processes.items() if p.poll() is None}
        out["broker"] = self.broker_pid()
        return out

    def stop(self) -> None:
        self.system.stop()
        if self.broker is not None:
            from cli import localbroker

            with contextlib.suppress(Exception):
                localbroker.stop(self.broker)


def timed_scan(api: httpx.Client, body: dict) -> tuple[float, dict, dict[str, float]]:
    """POST to GET /api/scan/{id} completed (every violation readable): (seconds, the scan's view, its
    stages in seconds from its history's record times)."""
    posted_at, started = time.time(), time.perf_counter()
    r = api.post("/api/scan/run", json=body, headers={"Prefer": "respond-async"})
    r.raise_for_status()
    scan_id = r.json()["scan_id"]
    deadline = time.monotonic() + SCAN_DEADLINE_S
    while time.monotonic() < deadline:
        view = api.get(f"/api/scan/{scan_id}").json()
        if view["status"] in ("completed", "failed", "aborted"):
            seconds, done_at = time.perf_counter() - started, time.time()
            return seconds, view, stages(api, scan_id, posted_at, done_at)
        time.sleep(0.01)
    raise SystemExit(f"scale: scan {scan_id} not completed {SCAN_DEADLINE_S} s after its POST: {view}")


STAGES = ("command", "plan", "units", "finish", "project")


def stages(api: httpx.Client, scan_id: str, posted_at: float, done_at: float) -> dict[str, float]:
    """Where a scan's time went, from the record times of its history (GET /api/scans/{id}/history): the
    command on the log (from the POST), planned (scan.started), its units reported (the last report), the
    scan finished on the ledger, and its violations projected (until the API said completed)."""
    types = [c.RUN_SCAN, c.SCAN_STARTED, c.UNIT_COMPLETED, c.UNIT_FAILED, c.SCAN_FINISHED]
    r = api.get(f"/api/scans/{scan_id}/history", params={"limit": 1000, "type": types})
    if r.status_code != 200:
        return {}
    at: dict[str, float] = {}
    for item in r.json()["items"]:
        logged = datetime.fromisoformat(item["position"]["logged_at"].replace("Z", "+00:00")).timestamp()
        at[item["type"]] = max(at.get(item["type"], logged), logged)
    if not {c.RUN_SCAN, c.SCAN_STARTED, c.SCAN_FINISHED} <= set(at):
        return {}
    last_unit = max(at.get(c.UNIT_COMPLETED, 0), at.get(c.UNIT_FAILED, 0)) or at[c.SCAN_STARTED]
    return {"command": at[c.RUN_SCAN] - posted_at, "plan": at[c.SCAN_STARTED] - at[c.RUN_SCAN],
            "units": last_unit - at[c.SCAN_STARTED], "finish": at[c.SCAN_FINISHED] - last_unit,
            "project": done_at - at[c.SCAN_FINISHED]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000, help="records of the compliance scan (300,000)")
    parser.add_argument("--units", type=int, default=12,
                        help="units of the scan (default 12: the work topic's partitions)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3], help="worker counts (1 2 3)")
    parser.add_argument("--repeat", type=int, default=3, help="scans per worker count (default 3)")
    parser.add_argument("--database-url", help="SCANLEDGER_DATABASE_URL of every process (default: SQLite in the "
                        "data dir); the PostgreSQL hook")
    parser.add_argument("--replay-into", help="database URL replay rebuilds into (default: a SQLite file)")
    args = parser.parse_args()
    if max(args.workers) > len(WORKERS):
        raise SystemExit(f"scale: at most {len(WORKERS)} workers")
    cores = os.cpu_count() or 1
    csv = make_csv(args.records)
    _, expected = in_process(csv)
    load = os.getloadavg()
    print(f"scale: a {args.records:,}-record compliance scan ({len(RULES)} rules, {args.units} units, "
          f"{expected:,} violations), {', '.join(map(str, args.workers))} streams workers in one group, "
          f"{args.repeat} scans each; {cores} cores, load average {load[0]:.1f} at the start; database "
          f"{args.database_url or 'SQLite (the data dir)'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name:
        bench = Bench(Path(tmp_name), args.records, args.units, args.database_url)
        try:
            bench.start()
            with bench.system.client() as api:
                api.timeout = 300
                upload = api.post("/api/upload", files={"file": ("scale.csv", csv, "text/csv")})
                upload.raise_for_status()
                upload_id = upload.json()["upload_id"]
                mapping = api.post("/api/mapping/confirm", json={"upload_id": upload_id, "mapping": MAPPING})
                policy = api.post("/api/policies", json={"name": "scale", "rules": RULES})
                body = {"policy_id": policy.json()["id"], "upload_id": upload_id,
                        "mapping_id": mapping.json()["mapping_id"]}
                bench.set_workers(args.workers[0])
                warm, _, _ = timed_scan(api, body)
                print(f"warm-up scan ({args.workers[0]} worker(s)): {warm:.2f} s", flush=True)
                runs: dict[int, list[dict]] = {n: [] for n in args.workers}
                for round_ in range(args.repeat):
                    for n in args.workers:
                        bench.set_workers(n)
                        pids = bench.pids()
                        before = {name: cpu_s(pid) for name, pid in pids.items()}
                        seconds, view, stage_s = timed_scan(api, body)
                        used = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
                        if view["status"] != "completed" or view["violation_count"] != expected:
                            raise SystemExit(f"scale: a scan with {n} workers ended {view['status']} with "
                                             f"{view['violation_count']} violations, not {expected}")
                        runs[n].append({"s": seconds, "cpu": used, "stages": stage_s})
                        print(f"  round {round_ + 1}, {n} worker(s): {seconds:.2f} s, "
                              f"{args.records / seconds:,.0f} records/s", flush=True)
            events, replay_s = replay(bench, args.replay_into)
        finally:
            bench.stop()
    print()
    print(table(runs, args.records, cores))
    print("\nwhere the time goes, median seconds (record times of each scan's history; `project`: from "
          "scan.finished on the ledger to the API saying completed)")
    print(stage_table(runs))
    print(f"\nreplay of the run's log ({sum(len(r) for r in runs.values()) + 1} scans) into "
          f"{args.replay_into or 'SQLite'}: {events:,} events in {replay_s:.2f} s = {events / replay_s:,.0f} events/s"
          f"\nload average at the end {os.getloadavg()[0]:.1f} (other work on the machine weighs on every figure)")


def replay(bench: Bench, into: str | None) -> tuple[int, float]:
    target = into or f"sqlite:///{bench.tmp / 'replay.db'}"
    try:
        done = bench.system.cli("replay", "--into", target, timeout=1800)
    except Exception as exc:
        raise SystemExit(f"scale: replay into {target} failed: {getattr(exc, 'stderr', '') or exc}") from None
    return metered(done.stderr)


def stage_table(runs: dict[int, list[dict]]) -> str:
    head = ["workers", *STAGES, "total"]
    rows = []
    for n, measured in runs.items():
        timed = [r for r in measured if r["stages"]]
        rows.append([str(n), *(f"{statistics.median(r['stages'][k] for r in timed):.2f}" if timed else "-"
                               for k in STAGES), f"{statistics.median(r['s'] for r in measured):.2f}"])
    return markdown(head, rows)


def markdown(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)])


def table(runs: dict[int, list[dict]], records: int, cores: int) -> str:
    one = min(r["s"] for r in runs[min(runs)]) if runs else None
    head = ["workers", "best s", "median s", "records/s", "× 1 worker", "efficiency", "workers CPU s",
            "projector CPU s", "API CPU s", "broker CPU s", "cores busy", "records per worker CPU-s"]
    rows = []
    for n, measured in runs.items():
        best = min(measured, key=lambda r: r["s"])
        cpu = best["cpu"]
        workers_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
        ratio = (one / best["s"]) if one else None
        rows.append([str(n), f"{best['s']:.2f}", f"{statistics.median(r['s'] for r in measured):.2f}",
                     f"{records / best['s']:,.0f}", f"{ratio:.2f}" if ratio else "-",
                     f"{ratio / min(n, cores):.0%}" if ratio else "-", f"{workers_cpu:.1f}",
                     f"{cpu.get('projector', 0):.1f}", f"{cpu.get('api', 0):.1f}", f"{cpu.get('broker', 0):.1f}",
                     f"{sum(cpu.values()) / best['s']:.2f}",
                     f"{records / workers_cpu:,.0f}" if workers_cpu else "-"])
    return markdown(head, rows)


if __name__ == "__main__":
    main()
