"""Sensitive-data scan benchmark (seed 004): a whole parallel scan on the ledger (broker, worker
processes, projector, API) over the labelled corpus from a local directory and from a real S3
server, beside the same detectors in one plain in-process loop over the same files and a raw
read of the bytes (the floor), with 1 and 2 worker processes.

    python -m bench.sensitive_scan [--files 3000 --rows 700 --max-workers 8]

Figures are wall-clock: a scan's is from its POST until GET shows it finished with every finding
projected. Its ratio to the in-process loop is the cost of the ledger (events, chunks, projections).
Beside it, CPU seconds, which the machine's other load moves less: the worker processes' during the
scan (/proc) against the loop's own (process_time).

The worker runs at nice SCANLEDGER_WORKER_NICE (5: it yields the CPU to the API and the projector).
On a machine with other load that also makes it yield to every unrelated process, which a loop at
nice 0 does not: so the loop runs twice, here (nice 0) and in a child process at the worker's
niceness, and each scan's ratio is to the loop at the worker's niceness, run again just before that scan
(the machine's other load drifts over a run); the ratio to the nice-0 loop is printed beside it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.corpus import generate
from harness.faults import Procs
from harness.s3 import S3Server
from harness.system import Broker
from services.adapters.arrow_memory import keep_freed_pages
from services.adapters.file_cells import scan_files
from services.domain.detectors import Engine

KEY_ID_ENV, SECRET_ENV = "SCANLEDGER_SECRET_BENCH_KEY_ID", "SCANLEDGER_SECRET_BENCH_SECRET"
WORKER_NICE = int(os.environ.get("SCANLEDGER_WORKER_NICE", "5"))  # as cli/main.py's worker


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def thread_cpu(pids) -> Counter:
    """utime + stime so far of each thread of these processes, by name:thread id (py-spy names threads by id)."""
    out: Counter = Counter()
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                name, rest = (task / "stat").read_text().split("(", 1)[1].rsplit(")", 1)
                fields = rest.split()
                ticks = int(fields[11]) + int(fields[12])
                out[re.sub(r"\d+", "#", name) + ":" + task.name] += ticks / os.sysconf("SC_CLK_TCK")
    return out


def cpu_seconds(pids) -> float:
    """utime + stime of these processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def scan(client, connector: str, max_workers: int) -> tuple[float, dict]:
    start = time.perf_counter()
    r = client.post("/api/v1/scans/parallel", json={"connectors": [connector], "type": "full",
                                                    "options": {"max_workers": max_workers}})
    r.raise_for_status()
    scan_id = r.json()["data"]["scan_id"]
    while True:
        body = client.get(f"/api/v1/scans/{scan_id}").json()["data"]
        if body["status"] not in ("queued", "running"):
            return time.perf_counter() - start, body
        time.sleep(0.05)


def plain_loop(lake: Path, seed: int) -> tuple[float, int, float]:
    """The detectors over every file of `lake` in one plain loop (reads included), with the memory pool
    the worker scans with (cli/main.py): (seconds, findings, CPU seconds)."""
    keep_freed_pages()
    files = sorted(p for p in lake.rglob("*") if p.is_file())
    engine = Engine()
    scan_files([(f.data, f.name) for f in generate(seed + 1, files=10, rows=50).files], engine)  # warm
    cpu = time.process_time()
    seconds, results = timed(lambda: scan_files([(p.read_bytes(), p.relative_to(lake).as_posix()) for p in files],
                                                engine))
    return seconds, sum(len(r.findings) for r in results), time.process_time() - cpu


def loop_at_nice(lake: Path, seed: int, nice: int) -> tuple[float, int, float]:
    """plain_loop in a child process at this niceness (the worker's)."""
    out = subprocess.run([sys.executable, "-m", "bench.sensitive_scan", "--loop-dir", str(lake), "--seed", str(seed)],
                         preexec_fn=lambda: os.nice(nice), capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["seconds"], got["findings"], got["cpu"]


def s3_read_all(s3: S3Server, bucket: str, keys: list[str], threads: int = 8) -> int:
    """Every object's bytes over GETs on `threads` threads (a worker process's two chunks read on 4 each)."""
    client = s3.client()

    def get(key: str) -> int:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return len(body.read())
        finally:
            body.close()

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(get, keys))


def s3_plain_loop(s3: S3Server, bucket: str, keys: list[str], engine: Engine) -> int:
    """The detectors over the bucket in one plain loop: each object read, one at a time, then scanned
    (the in-process comparator of an S3 scan, its reads included)."""
    client = s3.client()
    found = 0
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            found += len(scan_files([(body.read(), key)], engine)[0].findings)
        finally:
            body.close()
    return found


def line(label: str, seconds: float, files: int, size: int, findings: int) -> str:
    return (f"  {label:44s} {seconds:7.2f} s  {files / seconds:8.0f} files/s  {size / seconds / 1e6:7.1f} MB/s"
            f"  {findings / seconds:9.0f} findings/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=700)
    parser.add_argument("--max-workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes, a system each")
    parser.add_argument("--thread-cpu", action="store_true", help="the worker's CPU seconds by thread, each scan")
    parser.add_argument("--connectors", nargs="+", default=["local_dir", "s3"], choices=["local_dir", "s3"])
    parser.add_argument("--loop-dir", help=argparse.SUPPRESS)  # the child of loop_at_nice
    args = parser.parse_args()
    if args.loop_dir:
        seconds, found, cpu = plain_loop(Path(args.loop_dir), args.seed)
        print(json.dumps({"seconds": seconds, "findings": found, "cpu": cpu}))
        return
    corpus = generate(args.seed, files=args.files, rows=args.rows, positive_rate=0.002, negative_rate=0.01)
    size, n = corpus.size, len(corpus.files)
    print(f"{n} files, {size / 1e6:.1f} MB, {len(corpus.truth)} planted true positives", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lake, warm = tmp / "lake", tmp / "warm"
        for root, files in ((lake, corpus.files), (warm, generate(args.seed + 1, files=10, rows=50).files)):
            for f in files:
                (root / f.name).parent.mkdir(parents=True, exist_ok=True)
                (root / f.name).write_bytes(f.data)
        raw, _ = timed(lambda: sum(len(p.read_bytes()) for p in lake.rglob("*") if p.is_file()))
        engine = Engine()
        scan_files([(f.data, f.name) for f in generate(args.seed + 1, files=10, rows=50).files], engine)  # warm
        loop, results = timed(lambda: scan_files([((lake / f.name).read_bytes(), f.name) for f in corpus.files],
                                                 engine))
        found = sum(len(r.findings) for r in results)
        print(line("raw read of the bytes (floor)", raw, n, size, 0))
        print(line("detectors, one plain in-process loop", loop, n, size, found), flush=True)
        niced, niced_found, niced_cpu = loop_at_nice(lake, args.seed, WORKER_NICE)
        print(line(f"the same loop at the worker's nice ({WORKER_NICE})", niced, n, size, niced_found)
              + f"  {niced_cpu:.2f} s CPU", flush=True)
        print("  each scan below: its ratio to that loop at the worker's nice run again just before it "
              "(its seconds in brackets), then to the nice-0 loop above; then the worker processes' CPU "
              "seconds during the scan and their ratio to that loop's CPU seconds", flush=True)
        s3 = S3Server(tmp / "s3").start()
        broker = Broker(tmp / "broker")
        bootstrap = broker.start()
        try:
            bucket = s3.bucket("bench-sensitive", {f.name: f.data for f in corpus.files})
            if "s3" in args.connectors:
                s3_raw, _ = timed(lambda: s3_read_all(s3, bucket, [f.name for f in corpus.files]))
                print(line("raw read of the bytes from S3 (floor, 8 threads)", s3_raw, n, size, 0), flush=True)
                s3_loop, s3_found = timed(lambda: s3_plain_loop(s3, bucket, [f.name for f in corpus.files], engine))
                print(line("detectors, one plain loop reading each object from S3", s3_loop, n, size, s3_found),
                      flush=True)
            for workers in args.workers:
                procs = Procs(bootstrap, tmp / f"system-{workers}", SCANLEDGER_S3_ENDPOINTS=s3.url,
                              SCANLEDGER_DATASTORE_ROOT=str(tmp), **{KEY_ID_ENV: s3.keys["aws_access_key_id"],
                                                                     SECRET_ENV: s3.keys["aws_secret_access_key"]})
                procs.start()
                for k in range(2, workers + 1):
                    procs.spawn(f"worker{k}", "worker")
                if workers > 1:
                    time.sleep(10)  # the other workers join the group and take their share of the work partitions
                pids = [p.pid for name, p in procs.processes.items() if name.startswith("worker")]
                try:
                    with procs.client() as client:
                        client.timeout = 120
                        # as the loops' engines are warmed before they are timed: a worker's first chunks
                        # otherwise pay its detectors' lazy set-up (~0.2-0.3 s of CPU)
                        warmed = client.post("/api/v1/connectors", json={"name": "warm", "type": "local_dir",
                                                                         "config": {"path": "warm"}}).json()["data"]
                        scan(client, warmed["id"], args.max_workers)
                        local = client.post("/api/v1/connectors", json={"name": "lake", "type": "local_dir",
                                                                        "config": {"path": "lake"}}).json()["data"]
                        remote = client.post("/api/v1/connectors", json={"name": "s3", "type": "s3", "config": {
                            "bucket": bucket, "endpoint_url": s3.url, "credentials": {
                                "source": "env", "access_key_id_env": KEY_ID_ENV,
                                "secret_access_key_env": SECRET_ENV}}}).json()["data"]
                        for label, connector in (("local_dir", local), ("s3", remote)):
                            if label not in args.connectors:
                                continue
                            beside, _, beside_cpu = loop_at_nice(lake, args.seed, WORKER_NICE)  # the load drifts
                            others = [procs.processes[name].pid for name in ("projector", "api")]
                            cpu, threads, other = cpu_seconds(pids), thread_cpu(pids), cpu_seconds(others)
                            seconds, body = scan(client, connector["id"], args.max_workers)
                            cpu, threads = cpu_seconds(pids) - cpu, thread_cpu(pids) - threads
                            other = cpu_seconds(others) - other
                            count = body["progress"]["findings_count"]
                            print(line(f"scan on the ledger, {label}, {workers} worker process(es)", seconds, n, size,
                                       count) + f"  ratio {seconds / beside:.2f}x [loop {beside:.2f} s]"
                                  f" {seconds / loop:.2f}x at nice 0"
                                  + (f", {seconds / s3_loop:.2f}x the plain S3 loop" if label == "s3" else "")
                                  + f"  [{body['status']}, "
                                  f"{body['coverage']['total_scanned']} scanned]"
                                  f"  worker CPU {cpu:.2f} s, {cpu / beside_cpu:.2f}x the loop's {beside_cpu:.2f} s"
                                  f" (projector and API {other:.2f} s)",
                                  flush=True)
                            if args.thread_cpu:
                                print("    by thread: " + ", ".join(f"{name} {s:.2f}" for name, s in
                                                                    threads.most_common() if s >= 0.01), flush=True)
                finally:
                    procs.stop()
        finally:
            broker.stop()
            s3.stop()


if __name__ == "__main__":
    main()
