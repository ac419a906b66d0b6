"""Findings of a large sensitive-data scan, a page at a time, through the real API (issue 19).

    python -m bench.findings_pages [--findings 1000000] [--files 2000] [--requests 300]

Builds a read-model database holding one finished scan with N findings over F files (rows as the
projector writes them), starts `scanledger api` on it (reads need no broker), and times
GET /api/v1/scans/{id}/findings (limit 100) from random keyset cursors, unfiltered and with each
filter, and GET /api/v1/scans/{id}, as p50 and p99 over R requests each. The baseline, in the same
run: the same requests on the same database without this issue's indexes (the findings' keyset
index and the per-detector one), as the read side stood before them; the ratio is printed.
"""
from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from api.sensitive.queries import encode_cursor
from harness.system import ROOT, free_port
from services import stores
from services.stores import config_store, read_models

TOKEN = "bench-admin-token"
SCAN = "scan-bench"
DETECTORS = [("email", "email", 0.6), ("phone", "phone", 0.2), ("card_number", "payment_card", 0.1),
             ("iban", "iban", 0.05), ("us_ssn", "ssn", 0.05)]
INDEXES = ("rm_sensitive_findings_page", "rm_sensitive_findings_detector")


def build(db_path: Path, n_findings: int, n_files: int, rng: random.Random) -> list[tuple]:
    """The database, and the keyset of every finding (connector, file, finding id) to draw cursors from."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    stores.init(conn)
    read_models.create(conn)
    config_store.bootstrap_admin(conn, TOKEN)
    now = "2026-12-06T08:00:00.000Z"
    conn.execute("BEGIN")
    conn.execute("INSERT INTO rm_scans (scan_id, workspace_id, kind, status, created_at, started_at, finished_at,"
                 " finalized, violation_count, request) VALUES (?, 'default', 'sensitive', 'completed', ?, ?, ?,"
                 " 1, ?, '{}')", (SCAN, now, now, now, n_findings))
    conn.execute("INSERT INTO rm_sensitive_scans (scan_id, workspace_id, type, connectors, options, coverage_target,"
                 " coverage_strategy, workers_requested, enumeration_status, total_enumerated, created_at)"
                 " VALUES (?, 'default', 'full', '[\"conn-a\"]', '{\"max_workers\": 4}', 1.0, 'best_effort', 4,"
                 " 'complete', ?, ?)", (SCAN, n_files, now))
    per_file = n_findings // n_files
    files = [f"exports/{i % 40:02d}/part_{i:05d}.csv" for i in range(n_files)]
    conn.executemany("INSERT INTO rm_sensitive_files VALUES (?, 'conn-a', ?, ?, ?, 'scanned', NULL, 100000, 'v',"
                     " ?, ?)", [(SCAN, f, f"{SCAN}.c{i % 4}", i, per_file, now) for i, f in enumerate(files)])
    weights = [w for _, _, w in DETECTORS]
    keys = []
    batch = []
    for i, file in enumerate(files):
        for j in range(per_file):
            detector, family, _ = rng.choices(DETECTORS, weights)[0]
            fid = f"{rng.getrandbits(64):016x}{i:05d}{j:05d}"
            keys.append(("conn-a", file, fid))
            batch.append((SCAN, fid, "conn-a", file, j + 1, "contact", None, 0, 20, detector, family,
                          round(rng.uniform(0.8, 0.99), 2), "j***@example.com", now))
        if len(batch) >= 50_000:
            _insert(conn, batch)
            batch = []
    _insert(conn, batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return sorted(keys)


def _insert(conn, rows: list[tuple]) -> None:
    conn.executemany("INSERT INTO rm_sensitive_findings (scan_id, finding_id, connector_id, file, row, col, line,"
                     " start, end_, detector, family, confidence, masked, found_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


class Api:
    """`scanledger api` on the data dir, as `up` starts it (reads need no broker)."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        env = {**os.environ, "SCANLEDGER_DATA_DIR": str(data_dir), "SCANLEDGER_ADMIN_TOKEN": TOKEN,
               "SCANLEDGER_PORT": str(self.port), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
        self.process = subprocess.Popen([sys.executable, "-m", "cli.main", "api"], env=env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120,
                                   headers={"Authorization": f"Bearer {TOKEN}"})
        while True:
            try:
                if self.client.get(f"/api/v1/scans/{SCAN}").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(30)


def timed(client: httpx.Client, path: str, params_of, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        params = params_of()
        start = time.perf_counter()
        r = client.get(path, params=params)
        samples.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
    samples.sort()
    return statistics.median(samples) * 1000, samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000


def cases(keys: list[tuple], rng: random.Random) -> dict:
    def cursor() -> dict:
        return {"limit": 100, "cursor": encode_cursor(*rng.choice(keys))}

    folder = keys[len(keys) // 2][1].rsplit("/", 1)[0] + "/"
    return {
        "findings, first page": lambda: {"limit": 100},
        "findings, a random cursor": cursor,
        "findings, detector=email": lambda: {**cursor(), "detector": "email"},
        "findings, detector=us_ssn (5 %)": lambda: {**cursor(), "detector": "us_ssn"},
        "findings, file=<a folder>": lambda: {"limit": 100, "file": folder},
        "findings, min_confidence=0.98": lambda: {**cursor(), "min_confidence": 0.98},
    }


def drop_indexes(data_dir: Path) -> None:
    """Once the API runs (its start creates every index that is missing): the baseline's database."""
    conn = sqlite3.connect(data_dir / "scanledger.db")
    for index in INDEXES:
        conn.execute(f"DROP INDEX {index}")
    conn.execute("ANALYZE")
    conn.close()


def measure(data_dir: Path, keys: list[tuple], n: int, seed: int, baseline: bool = False
            ) -> dict[str, tuple[float, float]]:
    api = Api(data_dir)
    if baseline:
        drop_indexes(data_dir)
    try:
        rng = random.Random(seed)
        out = {name: timed(api.client, f"/api/v1/scans/{SCAN}/findings", params, n)
               for name, params in cases(keys, rng).items()}
        out["the scan (GET /api/v1/scans/{id})"] = timed(api.client, f"/api/v1/scans/{SCAN}", dict, max(n // 5, 10))
        return out
    finally:
        api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        start = time.perf_counter()
        keys = build(data_dir / "scanledger.db", args.findings, args.files, random.Random(7))
        print(f"{len(keys)} findings over {args.files} files, built in {time.perf_counter() - start:.1f} s")
        now = measure(data_dir, keys, args.requests, seed=11)
        before = measure(data_dir, keys, max(args.requests // 10, 10), seed=11, baseline=True)  # slow: fewer
    print(f"  {'request (limit 100)':36s} {'p50 ms':>9s} {'p99 ms':>9s}   baseline p50/p99 ms (no index)   ratio p99")
    for name, (p50, p99) in now.items():
        b50, b99 = before[name]
        print(f"  {name:36s} {p50:9.1f} {p99:9.1f}   {b50:9.1f} {b99:9.1f}   {p99 / b99:9.3f}x")


if __name__ == "__main__":
    main()
