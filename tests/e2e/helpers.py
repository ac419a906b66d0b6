from __future__ import annotations

import time

import httpx

from harness import data, databases


def ok(r: httpx.Response, status: int = 200):
    """The `data` of an API answer (the /api/v1 envelope), after checking its status."""
    assert r.status_code == status, r.text
    return r.json()["data"]


def until(probe):
    """probe()'s first truthy answer, polled: no time limit, the test runner's is the only one."""
    while not (found := probe()):
        time.sleep(0.1)
    return found


def upload(api: httpx.Client, content: bytes, name: str = "transactions.csv") -> dict:
    r = api.post("/api/upload", files={"file": (name, content, "text/csv")})
    assert r.status_code == 201, r.text
    return r.json()


def confirm(api: httpx.Client, upload_id: str, mapping=None, temporal_scale: str = "daily") -> dict:
    r = api.post("/api/mapping/confirm", json={"upload_id": upload_id, "mapping": mapping or data.MAPPING,
                                               "temporal_scale": temporal_scale})
    assert r.status_code == 201, r.text
    return r.json()


def policy(api: httpx.Client, rules=None, name: str = "AML basics") -> dict:
    r = api.post("/api/policies", json={"name": name, "rules": rules or data.RULES})
    assert r.status_code == 201, r.text
    return r.json()


def run(api: httpx.Client, policy_id: str, upload_id: str, mapping_id: str, **extra) -> str:
    r = api.post("/api/scan/run", json={"policy_id": policy_id, "upload_id": upload_id, "mapping_id": mapping_id,
                                        **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "running"
    return body["scan_id"]


def wait_settled(api: httpx.Client, scan_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = api.get(f"/api/scan/{scan_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("completed", "failed", "aborted"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"scan {scan_id} did not finish: {body}")


def scan_once(api: httpx.Client, rows: list[dict], policy_id: str, **extra) -> tuple[str, dict]:
    up = upload(api, data.to_csv(rows))
    mapping = confirm(api, up["upload_id"])
    scan_id = run(api, policy_id, up["upload_id"], mapping["mapping_id"], **extra)
    return scan_id, wait_settled(api, scan_id)


def all_violations(api: httpx.Client, scan_id: str, **filters) -> list[dict]:
    items, page = [], 1
    while True:
        r = api.get(f"/api/scan/{scan_id}/violations", params={"page": page, "size": 1000, **filters})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        if page >= body["pages"]:
            return items
        page += 1


def rows(where, table) -> list:
    """Every row of a read-model table, in a stable order: how live and replayed models compare."""
    return databases.rows(where, table)
