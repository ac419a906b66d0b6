"""A fresh workspace per test module (monitor scans cover a whole workspace), with one
client per role, and waiting for a sync (catalog run) to finish."""
from __future__ import annotations

import time
from contextlib import contextmanager
from types import SimpleNamespace

import httpx


@contextmanager
def in_workspace(system, name: str):
    with system.client() as bootstrap:
        r = bootstrap.post("/api/workspaces", json={"name": name})
        assert r.status_code == 201, r.text
        created = r.json()
    clients = {"admin": system.client(created["admin_token"]["token"])}
    for role in ("Member", "Viewer"):
        r = clients["admin"].post("/api/tokens", json={"role": role, "user": f"{role.lower()}@example.com"})
        assert r.status_code == 201, r.text
        clients[role.lower()] = system.client(r.json()["token"])
    try:
        yield SimpleNamespace(id=created["id"], **clients)
    finally:
        for client in clients.values():
            client.close()


def wait_finished(client: httpx.Client, execution_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.get(f"/api/scan/status/{execution_id}")
        assert r.status_code == 200, r.text
        if r.json()["data"]["status"] != "running":
            return r.json()["data"]
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} still running")


def sync(client: httpx.Client, datastore_id: int) -> list[dict]:
    r = client.post(f"/api/datastores/{datastore_id}/sync")
    assert r.status_code == 202, r.text
    wait_finished(client, r.json()["scan_id"])
    r = client.get("/api/assets", params={"datastore": datastore_id})
    assert r.status_code == 200, r.text
    return r.json()["items"]
