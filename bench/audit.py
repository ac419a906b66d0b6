"""Audit benchmark: replay, replay as of an instant, verify and a scan's history, each beside a plain
read of the same log in the same run (the ratio is what applying or checking costs over reading).

    python -m bench.audit [--records 200000]

Starts its own local broker (or uses KAFKA_BOOTSTRAP_SERVERS), worker, projector and API, runs two
compliance scans of `--records` transactions (the second is the as-of instant's far side), then times
each audit command as a user runs it (`scanledger …`, its throughput line), the API's as-of answer,
and a config change (on the log before it commits) beside a read of it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.compliance_scan import bench_policy, bench_system, ledger_scan, make_csv, metered, upload_mapped
from harness.data import RULES
from harness.system import System
from services.adapters.ledger_reader import LedgerReader
from services.settings import Settings, Topics


def plain_read(system: System) -> tuple[int, float]:
    """Every record of the projector's topics read and nothing else: the floor for replay and verify."""
    settings = Settings.from_env(kafka_bootstrap=system.env["KAFKA_BOOTSTRAP_SERVERS"],
                                 topics=Topics(system.env["SCANLEDGER_TOPIC_PREFIX"]))
    t = settings.topics
    reader = LedgerReader(settings, "bench")
    started = time.perf_counter()
    try:
        tps = [(topic, p) for topic in (t.commands, t.scan_events, t.violations, t.findings)
               for p in reader.partitions(topic)]
        n = sum(1 for _ in reader.read(reader.ends(tps)))
    finally:
        reader.close()
    return n, time.perf_counter() - started


def config_change_latencies(api, policy: str, n: int = 50) -> tuple[list[float], list[float]]:
    """Seconds of each of n policy changes (each a ConfigChanged acked before COMMIT) and of n reads of it."""
    changes, reads = [], []
    for i in range(n):
        t = time.perf_counter()
        assert api.put(f"/api/policies/{policy}", json={"name": f"bench {i}", "rules": RULES}).status_code == 200
        changes.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert api.get(f"/api/policies/{policy}").json()["name"] == f"bench {i}"
        reads.append(time.perf_counter() - t)
    return changes, reads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_system(Path(tmp)) as (system, api):
        policy = bench_policy(api)
        upload_id, mapping_id = upload_mapped(api, make_csv(args.records))
        _, first, _ = ledger_scan(api, policy, upload_id, mapping_id)
        between = datetime.now(UTC).isoformat()
        _, second, _ = ledger_scan(api, policy, upload_id, mapping_id)
        time.sleep(2)  # the projector caught up
        n, floor = plain_read(system)
        rows = [("plain read (baseline)", n, floor)]
        for label, cli_args in (
                ("replay", ("replay", "--into", f"sqlite:///{Path(tmp) / 'r.db'}")),
                ("replay --as-of (first scan only)",
                 ("replay", "--as-of", between, "--into", f"sqlite:///{Path(tmp) / 'a.db'}")),
                ("verify (every scan)", ("verify",)),
                ("verify --scan", ("verify", "--scan", second["id"])),
                ("history (from the log)", ("history", second["id"]))):
            out = system.cli(*cli_args)
            rows.append((label, *metered(out.stderr)))
        latencies = []
        for _ in range(5):
            t = time.perf_counter()
            r = api.get(f"/api/scan/{second['id']}", params={"as_of": datetime.now(UTC).isoformat()})
            latencies.append(time.perf_counter() - t)
            assert r.json() == second, "as of now is the scan as the API shows it"
        assert api.get(f"/api/scan/{first['id']}", params={"as_of": between}).json() == first
        changes, reads = config_change_latencies(api, policy)
        print(f"{args.records:,} records a scan, 2 scans, {second['violation_count']:,} violations each")
        print(f"{'':<34} {'records':>10} {'seconds':>8} {'records/s':>11} {'× plain read':>13}")
        for label, count, seconds in rows:
            rate = count / seconds if seconds else 0.0
            print(f"{label:<34} {count:>10,} {seconds:>8.2f} {rate:>11,.0f} {seconds / floor:>13.1f}")
        print(f"GET /api/scan/{{id}}?as_of= (a scan of {args.records:,}): median "
              f"{statistics.median(latencies) * 1000:,.0f} ms, max {max(latencies) * 1000:,.0f} ms")
        change, read = statistics.median(changes), statistics.median(reads)
        print(f"a config change (PUT /api/policies/{{id}}, on the log before it commits): median "
              f"{change * 1000:.1f} ms, p90 {statistics.quantiles(changes, n=10)[-1] * 1000:.1f} ms; "
              f"a GET of it {read * 1000:.1f} ms; {change / read:.1f}× the read")


if __name__ == "__main__":
    main()
