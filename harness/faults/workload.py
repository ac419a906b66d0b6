"""What every run of a campaign scans: a compliance scan of a seeded upload (its records made once
per size) and, optionally, a monitor scan of a small lake of CSV files with monitors on every asset.
`Workload.prepare` creates them through the API, `Workload.start` POSTs the scans of one run."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import httpx

from harness import data
from harness.faults.knobs import HEAVY_RULES, MONITOR_ASSETS, MONITOR_ROWS, ROWS, SEED, policy_rules
from harness.faults.waiting import _wait_final

# --------------------------------------------------------------------------- the workload


@lru_cache(maxsize=2)
def compliance_rows(n: int = ROWS) -> tuple[list[dict], bytes]:
    rows = data.transactions(n, seed=SEED)
    return rows, data.to_csv(rows)


def write_lake(root: Path) -> Path:
    """Files for the monitor scan: MONITOR_ASSETS CSVs of MONITOR_ROWS rows and one unreadable file."""
    lake = root / "faults-lake"
    if lake.exists():
        return lake
    lake.mkdir(parents=True)
    rnd = random.Random(SEED)
    for a in range(MONITOR_ASSETS):
        lines = ["id,email,amount,country,created"]
        for i in range(MONITOR_ROWS):
            email = "" if rnd.random() < 0.02 else f"user{rnd.randrange(10**6)}@example.com"
            if rnd.random() < 0.01:
                email = "not-an-email"
            ident = i if rnd.random() > 0.001 else max(0, i - 1)
            lines.append(f"{ident},{email},{round(rnd.uniform(-5, 1100), 2)},{rnd.choice(['US', 'DE', 'FR', 'XX'])},"
                         f"2024-0{1 + a}-{1 + i % 28:02d}T10:00:00Z")
        (lake / f"accounts_{a}.csv").write_text("\n".join(lines) + "\n")
    (lake / "broken.csv").write_text('a,b\n1,2\n3,4,5,6\n"unclosed\n')
    return lake


def monitors_for(name: str) -> list[dict]:
    if name == "broken.csv":
        return [{"name": "Has rows", "type": "record_count", "params": {"min": 1}}]
    return [
        {"name": "Rows", "type": "record_count", "params": {"min": 1, "max": MONITOR_ROWS - 1}},
        {"name": "Email nulls", "type": "null_rate", "params": {"column": "email", "max": 0.01}, "severity": "high"},
        {"name": "Unique ids", "type": "uniqueness", "params": {"columns": ["id"]}},
        {"name": "Amount range", "type": "value_range", "params": {"column": "amount", "min": 0, "max": 1000}},
        {"name": "Countries", "type": "allowed_values", "params": {"column": "country", "values": ["US", "DE", "FR"]}},
        {"name": "Email pattern", "type": "pattern", "params": {"column": "email", "regex": r"[^@]+@[^@]+\.[a-z]+"}},
        {"name": "Schema", "type": "schema", "params": {"columns": {"id": "integer", "amount": "float",
                                                                     "email": "string", "missing": "string"}}},
        {"name": "No such column", "type": "null_rate", "params": {"column": "nope", "max": 0.5}},
    ]


def _ok(r: httpx.Response, *codes: int) -> dict:
    assert r.status_code in (codes or (200, 201)), f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json()


@dataclass
class Workload:
    """What every run of a campaign scans: one compliance scan and (optionally) one monitor scan."""
    upload_id: str
    mapping_id: str
    policy_id: str
    monitor: bool
    rows: int
    heavy: int

    @classmethod
    def prepare(cls, target, monitor: bool = True, rows: int = ROWS, heavy: int = HEAVY_RULES) -> Workload:
        _, csv = compliance_rows(rows)
        with target.client() as api:
            up = _ok(api.post("/api/upload", files={"file": ("faults.csv", csv, "text/csv")}), 201)
            mapping = _ok(api.post("/api/mapping/confirm", json={"upload_id": up["upload_id"], "mapping": data.MAPPING,
                                                                 "temporal_scale": "daily"}), 201)
            policy = _ok(api.post("/api/policies", json={"name": "faults", "rules": policy_rules(heavy)}), 201)
            if monitor:
                write_lake(target.datastore_root)
                store = _ok(api.post("/api/datastores", json={"name": "Faults lake", "type": "local_dir",
                                                               "path": "faults-lake"}), 201)
                sync = _ok(api.post(f"/api/datastores/{store['id']}/sync"), 202)
                _wait_final(target, [sync["scan_id"]], time.monotonic() + 120)
                assets = _ok(api.get("/api/assets", params={"datastore": store["id"]}))["items"]
                for asset in assets:
                    for m in monitors_for(asset["name"]):
                        _ok(api.post(f"/api/assets/{asset['id']}/monitors", json=m), 201)
        return cls(up["upload_id"], mapping["mapping_id"], policy["id"], monitor, rows, heavy)

    def body(self) -> dict:
        return {"policy_id": self.policy_id, "upload_id": self.upload_id, "mapping_id": self.mapping_id}

    def start(self, api: httpx.Client) -> dict[str, str]:
        """POST the scans (the monitor scan first: it is the smaller); {"compliance": id, "monitor": id}."""
        scans = {}
        if self.monitor:
            scans["monitor"] = _ok(api.post("/api/scan/run"), 202)["data"]["executionId"]
        r = api.post("/api/scan/run", json=self.body(), headers={"Prefer": "respond-async"})
        scans["compliance"] = _ok(r, 200)["scan_id"]
        return scans
