"""What every run of a campaign scans: a compliance scan of a seeded upload (its records made once
per size) and, optionally, a monitor scan of a small lake of CSV files with monitors on every asset,
a catalog sync of a datastore of tables (CSV, JSON lines, Parquet and one unreadable file) and a
sensitive-data scan of a directory holding copies of the labelled corpus (harness/corpus.py), whose
findings are known exactly. `Workload.prepare` creates them through the API, `Workload.start` POSTs
the scans of one run."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from harness import data
from harness.corpus import Corpus, generate
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


# The sensitive-data scan: SENSITIVE_COPIES copies (copy-0/ … ) of the corpus the e2e tests find exactly
# (seed 41, 20 files of 60 rows), so the answer is known finding by finding and the scan has enough
# files for its chunks to be mid-way when a fault comes.
SENSITIVE_SEED, SENSITIVE_FILES, SENSITIVE_ROWS, SENSITIVE_COPIES = 41, 20, 60, 6
SENSITIVE_TYPES = ["csv", "json", "jsonl", "parquet", "txt", "gz"]
SENSITIVE_WORKERS = 4
# The catalog sync: CATALOG_TABLES tables of CATALOG_ROWS rows each in turn CSV, JSON lines and Parquet,
# and one file no reader can parse.
CATALOG_TABLES, CATALOG_ROWS = 6, 20000


@lru_cache(maxsize=1)
def sensitive_corpus() -> Corpus:
    """The corpus of the sensitive-data scan with its truth: (file, location, family) of every planted value,
    over all copies (file names relative to the connector's directory, as findings name them)."""
    one = generate(seed=SENSITIVE_SEED, files=SENSITIVE_FILES, rows=SENSITIVE_ROWS)
    out = Corpus()
    for i in range(SENSITIVE_COPIES):
        out.files += [type(f)(f"copy-{i}/{f.name}", f.data) for f in one.files]
        out.truth |= {(f"copy-{i}/{name}", loc, family) for name, loc, family in one.truth}
        out.planted_values += one.planted_values
    return out


def write_sensitive(root: Path) -> Path:
    folder = root / "chaos-sensitive"
    if not folder.exists():
        for f in sensitive_corpus().files:
            (folder / f.name).parent.mkdir(parents=True, exist_ok=True)
            (folder / f.name).write_bytes(f.data)
    return folder


def catalog_tables() -> dict[str, tuple[int, list[str]] | None]:
    """What the catalog sync must find: each file's (rows, columns), None for the unreadable one."""
    columns = ["id", "name", "amount", "country", "created"]
    out: dict[str, tuple[int, list[str]] | None] = {}
    for i in range(CATALOG_TABLES):
        out[f"table_{i}.{('csv', 'jsonl', 'parquet')[i % 3]}"] = (CATALOG_ROWS + 1000 * i, columns)
    out["broken.csv"] = None
    return out


def write_catalog(root: Path) -> Path:
    folder = root / "chaos-catalog"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    rnd = random.Random(SEED + 1)
    for name, shape in catalog_tables().items():
        if shape is None:
            (folder / name).write_text('a,b\n1,2\n3,4,5,6\n"unclosed\n')
            continue
        rows, _ = shape
        table = pa.table({"id": list(range(rows)),
                          "name": [f"n{rnd.randrange(10**6)}" for _ in range(rows)],
                          "amount": [round(rnd.uniform(0, 1000), 2) for _ in range(rows)],
                          "country": [rnd.choice(["US", "DE", "FR"]) for _ in range(rows)],
                          "created": [f"2024-01-{1 + i % 28:02d}T10:00:00Z" for i in range(rows)]})
        if name.endswith(".parquet"):
            pq.write_table(table, folder / name)
        elif name.endswith(".jsonl"):
            (folder / name).write_bytes(b"\n".join(orjson.dumps(r) for r in table.to_pylist()) + b"\n")
        else:
            pacsv.write_csv(table, folder / name)
    return folder


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
    """What every run of a campaign scans: one compliance scan and (optionally) one monitor scan, one
    catalog sync (of `catalog_id`) and one sensitive-data scan (of the connector `connector_id`)."""
    upload_id: str
    mapping_id: str
    policy_id: str
    monitor: bool
    rows: int
    heavy: int
    catalog_id: int | None = None
    connector_id: str | None = None

    @property
    def kinds(self) -> list[str]:
        """The labels of the scans one run starts, in the order `start` POSTs them."""
        return [*(["monitor"] if self.monitor else []), *(["catalog"] if self.catalog_id is not None else []),
                *(["sensitive"] if self.connector_id else []), "compliance"]

    @classmethod
    def prepare(cls, target, monitor: bool = True, rows: int = ROWS, heavy: int = HEAVY_RULES,
                catalog: bool = False, sensitive: bool = False) -> Workload:
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
            catalog_id = connector_id = None
            if catalog:
                write_catalog(target.datastore_root)
                catalog_id = _ok(api.post("/api/datastores", json={"name": "Chaos catalog", "type": "local_dir",
                                                                   "path": "chaos-catalog"}), 201)["id"]
            if sensitive:
                write_sensitive(target.datastore_root)
                connector_id = _ok(api.post("/api/v1/connectors", json={
                    "name": "Chaos sensitive", "type": "local_dir", "config": {"path": "chaos-sensitive"}}),
                    201)["data"]["id"]
        return cls(up["upload_id"], mapping["mapping_id"], policy["id"], monitor, rows, heavy, catalog_id,
                   connector_id)

    def body(self) -> dict:
        return {"policy_id": self.policy_id, "upload_id": self.upload_id, "mapping_id": self.mapping_id}

    def sensitive_body(self) -> dict:
        return {"connectors": [self.connector_id], "type": "full",
                "options": {"max_workers": SENSITIVE_WORKERS, "file_types": SENSITIVE_TYPES}}

    def start(self, api: httpx.Client) -> dict[str, str]:
        """POST the scans (the smaller first, the compliance scan last); {label: scan id} in `kinds`' labels."""
        scans = {}
        if self.monitor:
            scans["monitor"] = _ok(api.post("/api/scan/run"), 202)["data"]["executionId"]
        if self.catalog_id is not None:
            scans["catalog"] = _ok(api.post(f"/api/datastores/{self.catalog_id}/sync"), 202)["scan_id"]
        if self.connector_id:
            scans["sensitive"] = _ok(api.post("/api/v1/scans/parallel", json=self.sensitive_body()),
                                     201)["data"]["scan_id"]
        r = api.post("/api/scan/run", json=self.body(), headers={"Prefer": "respond-async"})
        scans["compliance"] = _ok(r, 200)["scan_id"]
        return scans
