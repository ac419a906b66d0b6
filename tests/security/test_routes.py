"""Issue 10, tenant isolation and authorization on every route of the OpenAPI document.

Every route is called with each kind of caller: no token and a revoked token (401), a
Viewer, a Member and an Admin of the workspace that owns the resources, and the Admin of
another workspace (404 for every resource of the first one). Callers that may act are given
ids that do not exist, so nothing is changed; callers that may not are given the real ids,
so a hole would show as a 2xx. Then the cases the issue found: datastores over the data
dir, Idempotency-Key (role, caller, body, secrets, concurrency), rotating the bootstrap
admin token, CSV identifiers. Waits poll until the system answers: no time limits.
"""
from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness import databases
from harness.system import System
from services.adapters.db import connect
from tests.e2e.monitor_fixtures import in_workspace

PUBLIC, READ, WRITE, TRIGGER, TOKENS, BOOTSTRAP = "public", "read", "write", "trigger", "tokens", "bootstrap"
REPORT = "report"  # a BYOC scan's worker token, on its own scan only
# Every route of the OpenAPI document and the permission it needs; a new route must be added here.
KINDS = {
    ("GET", "/healthz"): PUBLIC, ("GET", "/metrics"): PUBLIC, ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/api/scan/status/{executionId}"): TRIGGER, ("GET", "/api/assets/scan-status"): READ,
    ("POST", "/api/upload"): WRITE, ("POST", "/api/mapping/confirm"): WRITE,
    ("POST", "/api/policies"): WRITE, ("GET", "/api/policies"): READ,
    ("GET", "/api/policies/{id}"): READ, ("PUT", "/api/policies/{id}"): WRITE, ("DELETE", "/api/policies/{id}"): WRITE,
    ("POST", "/api/scan/run"): TRIGGER, ("GET", "/api/scan/{id}"): READ, ("GET", "/api/scan/{id}/violations"): READ,
    ("PATCH", "/api/violations/{id}"): WRITE,
    ("POST", "/api/datastores"): WRITE, ("GET", "/api/datastores"): READ,
    ("GET", "/api/datastores/{id}"): READ, ("DELETE", "/api/datastores/{id}"): WRITE,
    ("POST", "/api/datastores/{id}/sync"): TRIGGER,
    ("GET", "/api/assets"): READ, ("GET", "/api/assets/{assetId}"): READ,
    ("POST", "/api/assets/{assetId}/monitors"): WRITE, ("GET", "/api/assets/{assetId}/monitors"): READ,
    ("GET", "/api/assets/{assetId}/monitors/{monitorId}"): READ,
    ("PATCH", "/api/assets/{assetId}/monitors/{monitorId}"): WRITE,
    ("DELETE", "/api/assets/{assetId}/monitors/{monitorId}"): WRITE,
    ("POST", "/api/tokens"): TOKENS, ("GET", "/api/tokens"): TOKENS, ("DELETE", "/api/tokens/{id}"): TOKENS,
    ("POST", "/api/workspaces"): BOOTSTRAP,
    ("GET", "/api/operations"): READ, ("PUT", "/api/operations/abort/{id}"): TRIGGER,
    ("PUT", "/api/operations/run/{id}"): TRIGGER, ("PUT", "/api/operations/rerun/{id}"): TRIGGER,
    ("GET", "/api/operations/{id}"): READ, ("DELETE", "/api/operations/{id}"): TRIGGER,
    ("GET", "/api/operations/{id}/containers"): READ, ("GET", "/api/operations/{id}/events"): READ,
    ("POST", "/api/v1/connectors"): WRITE, ("GET", "/api/v1/connectors"): READ,
    ("GET", "/api/v1/connectors/{id}"): READ, ("DELETE", "/api/v1/connectors/{id}"): WRITE,
    ("POST", "/api/v1/scans/parallel"): TRIGGER, ("GET", "/api/v1/scans"): READ,
    ("GET", "/api/v1/scans/{id}"): READ, ("GET", "/api/v1/scans/{id}/workers"): READ,
    ("POST", "/api/v1/scans/{id}/cancel"): TRIGGER, ("GET", "/api/v1/scans/{id}/findings"): READ,
    ("GET", "/api/v1/scans/{id}/files"): READ, ("GET", "/api/v1/detectors"): READ,
    ("POST", "/api/v1/detectors/custom"): WRITE, ("GET", "/api/v1/detectors/custom"): READ,
    ("DELETE", "/api/v1/detectors/custom/{id}"): WRITE, ("POST", "/api/v1/allowlist"): WRITE,
    ("GET", "/api/v1/allowlist"): READ, ("DELETE", "/api/v1/allowlist/{id}"): WRITE,
    ("GET", "/api/v1/scans/{id}/deployment-config"): TRIGGER, ("POST", "/api/v1/scans/{id}/report"): REPORT,
    ("GET", "/api/scans/{id}/history"): READ,
}
ALLOWED = {"admin": {PUBLIC, READ, WRITE, TRIGGER, TOKENS}, "member": {PUBLIC, READ, WRITE, TRIGGER},
           "viewer": {PUBLIC, READ}}
CSV = b"Txn ID,Account ID,Amount,Date\nT1,ACC-1,15000.00,2024-01-15T10:00:00Z\nT2,ACC-2,20.00,2024-01-16T10:00:00Z\n"
MAPPING = {"amount": "Amount", "account": "Account ID", "timestamp": "Date"}
BIG = [{"id": "big", "name": "Large", "type": "threshold", "severity": "high",
        "params": {"field": "amount", "op": "gt", "value": 10000}}]


def until(probe):
    """Poll until probe() gives something truthy; no deadline (the suite's own timeout rules)."""
    while not (found := probe()):
        time.sleep(0.1)
    return found


def ok(r: httpx.Response, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json() if r.content else {}


def settled_scan(client, scan_id):
    return until(lambda: (b := ok(client.get(f"/api/scan/{scan_id}")))["status"] in ("completed", "failed",
                                                                                     "aborted") and b)


def finished_run(client, execution_id):
    return until(lambda: (d := ok(client.get(f"/api/scan/status/{execution_id}"))["data"])["status"] != "running"
                 and d)


def compliance_scan(client, csv: bytes = CSV, rules=BIG, mapping=MAPPING, **extra) -> tuple[dict, str, dict]:
    up = ok(client.post("/api/upload", files={"file": ("tx.csv", csv, "text/csv")}), 201)
    mp = ok(client.post("/api/mapping/confirm", json={"upload_id": up["upload_id"], "mapping": mapping}), 201)
    pol = ok(client.post("/api/policies", json={"name": f"P {uuid.uuid4().hex[:6]}", "rules": rules}), 201)
    body = {"policy_id": pol["id"], "upload_id": up["upload_id"], "mapping_id": mp["mapping_id"], **extra}
    scan_id = ok(client.post("/api/scan/run", json=body))["scan_id"]
    return body, scan_id, settled_scan(client, scan_id)


@pytest.fixture(scope="module")
def world(system):
    """Workspace A with one of every resource, a revoked token, and workspace B's Admin."""
    with in_workspace(system, "Security A") as a, in_workspace(system, "Security B") as b:
        lake = system.datastore_root / f"sec-{uuid.uuid4().hex[:8]}"
        lake.mkdir()
        (lake / "tx.csv").write_bytes(CSV)
        store = ok(a.admin.post("/api/datastores", json={"name": "Lake", "type": "local_dir", "path": lake.name}), 201)
        connector = ok(a.admin.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                 "config": {"path": lake.name}}), 201)["data"]
        sensitive = ok(a.admin.post("/api/v1/scans/parallel", json={"connectors": [connector["id"]], "type": "full"}),
                       201)["data"]["scan_id"]
        sync = ok(a.admin.post(f"/api/datastores/{store['id']}/sync"), 202)
        finished_run(a.admin, sync["scan_id"])
        asset = ok(a.admin.get("/api/assets", params={"datastore": store["id"]}))["items"][0]
        monitor = ok(a.admin.post(f"/api/assets/{asset['id']}/monitors", json={
            "name": "Rows", "type": "record_count", "params": {"min": 0, "max": 10}}), 201)
        execution = ok(a.admin.post("/api/scan/run"), 202)["data"]["executionId"]
        finished_run(a.admin, execution)
        body, scan_id, _ = compliance_scan(a.admin)
        violation = ok(a.admin.get(f"/api/scan/{scan_id}/violations"))["items"][0]
        byoc = ok(a.admin.post("/api/v1/scans/parallel", json={"connectors": [connector["id"]], "type": "full",
                                                                "options": {"execution": "byoc"}}), 201)["data"]
        deployment = ok(a.member.get(f"/api/v1/scans/{byoc['scan_id']}/deployment-config"))["data"]
        detector = ok(a.admin.post("/api/v1/detectors/custom", json={"name": "employee_id",
                                                                    "pattern": "EMP-[0-9]{6}"}), 201)["data"]
        allowed = ok(a.admin.post("/api/v1/allowlist", json={"value": "4111111111111111"}), 201)["data"]
        spare = ok(a.admin.post("/api/tokens", json={"role": "Viewer", "user": "spare@example.com"}), 201)
        revoked = ok(a.admin.post("/api/tokens", json={"role": "Admin", "user": "gone@example.com"}), 201)
        ok(a.admin.delete(f"/api/tokens/{revoked['id']}"), 204)
        ids = {"/api/policies/": body["policy_id"], "/api/scan/": scan_id,
               "/api/violations/": violation["id"], "/api/datastores/": store["id"],
               "/api/tokens/": spare["id"], "/api/operations/": sync["operation_id"],
               "/api/v1/connectors/": connector["id"], "/api/v1/scans/": sensitive,
               "/api/v1/detectors/custom/": detector["id"], "/api/v1/allowlist/": allowed["id"],
               "/api/scans/": scan_id,
               "{assetId}": asset["id"], "{monitorId}": monitor["id"], "{executionId}": execution}
        with system.client(revoked["token"]) as gone, system.client("no-such-token") as nobody, \
                httpx.Client(base_url=system.url, timeout=60) as anonymous, \
                system.client(deployment["environment"]["AUTH_TOKEN"]) as worker:
            yield {"a": a, "b": b, "ids": ids, "revoked": gone, "bad": nobody, "none": anonymous,
                   "worker": worker, "byoc": byoc["scan_id"], "paths": ok(anonymous.get("/openapi.json"))["paths"]}
        ok(a.admin.post(f"/api/v1/scans/{byoc['scan_id']}/cancel"))


OWNERS = ("/api/policies/", "/api/scan/", "/api/violations/", "/api/datastores/", "/api/tokens/", "/api/operations/",
          "/api/v1/connectors/", "/api/v1/scans/", "/api/v1/detectors/custom/", "/api/v1/allowlist/", "/api/scans/")


def fill(template: str, ids: dict | None) -> str:
    """The template with the real ids of workspace A, or (ids None) ids that exist nowhere."""
    path = template
    for name in ("{assetId}", "{monitorId}", "{executionId}"):
        path = path.replace(name, str(ids[name]) if ids else "999999")
    if "{id}" in path:
        owner = next(prefix for prefix in OWNERS if template.startswith(prefix))
        path = path.replace("{id}", str(ids[owner]) if ids else "999999")
    return path


# A body the route would act on, so a caller who reaches a resource it must not shows as a 2xx.
VALID = {("PUT", "/api/policies/{id}"): {"name": "taken", "rules": []},
         ("PATCH", "/api/violations/{id}"): {"status": "dismissed"},
         ("POST", "/api/assets/{assetId}/monitors"): {"name": "m", "type": "record_count", "params": {"min": 0}},
         ("PATCH", "/api/assets/{assetId}/monitors/{monitorId}"): {"enabled": False}}


def call(client, method, path, body):
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


def every_route(world):
    return [(m.upper(), p) for p, methods in world["paths"].items() for m in methods]


def test_every_openapi_route_is_classified(world):
    assert sorted(every_route(world)) == sorted(KINDS)


def test_no_or_revoked_token_is_401_on_every_route(world):
    for method, template in every_route(world):
        for who in ("none", "bad", "revoked"):
            r = call(world[who], method, fill(template, world["ids"]), VALID.get((method, template), {"x": 1}))
            if KINDS[(method, template)] == PUBLIC:
                assert r.status_code in (200, 503), (who, method, template, r.text)
            else:
                assert r.status_code == 401 and r.json()["error"] == "UNAUTHORIZED", (who, method, template, r.text)


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
def test_each_role_on_every_route(world, role):
    client = getattr(world["a"], role)
    for method, template in every_route(world):
        kind = KINDS[(method, template)]
        if kind in ALLOWED[role]:
            # past auth: a validation error or an unknown id, never 401/403 (or anything 5xx)
            r = call(client, method, fill(template, None), None if method in ("GET", "DELETE") else {"x": 1})
            assert r.status_code in (200, 202, 400, 404, 409, 503) and r.status_code not in (401, 403), \
                (role, method, template, r.text)
            if kind != PUBLIC:
                assert r.status_code != 503, (role, method, template, r.text)
        else:  # refused before anything is looked up, even with the real ids
            r = call(client, method, fill(template, world["ids"]), VALID.get((method, template), {"x": 1}))
            assert r.status_code == 403 and r.json()["error"] == "FORBIDDEN", (role, method, template, r.text)


def test_a_worker_token_on_every_route(world):
    """A BYOC worker token is its scan's reports and nothing else: 403 everywhere, even with real ids of
    its own workspace; another scan's report too. Its own scan's report is past auth."""
    for method, template in every_route(world):
        r = call(world["worker"], method, fill(template, world["ids"]), VALID.get((method, template), {"x": 1}))
        if KINDS[(method, template)] == PUBLIC:
            assert r.status_code in (200, 503), (method, template, r.text)
        else:
            assert r.status_code == 403 and r.json()["error"] == "FORBIDDEN", (method, template, r.text)
    r = world["worker"].post(f"/api/v1/scans/{world['byoc']}/report", json={"x": 1})
    assert r.status_code == 400 and r.json()["error"] == "VALIDATION_ERROR", r.text
    r = world["worker"].get(f"/api/v1/scans/{world['byoc']}")
    assert r.status_code == 403, r.text


def test_another_workspaces_admin_gets_404_for_every_resource(world):
    other, ids = world["b"].admin, world["ids"]
    for method, template in every_route(world):
        if "{" not in template:
            continue
        r = call(other, method, fill(template, ids), VALID.get((method, template)))
        if KINDS[(method, template)] == REPORT:  # no role reports: refused before the scan is looked up
            assert r.status_code == 403 and r.json()["error"] == "FORBIDDEN", (method, template, r.text)
            continue
        assert r.status_code == 404 and r.json()["error"] == "NOT_FOUND", (method, template, r.text)
    # and the lists show none of A's resources
    assert ids["/api/policies/"] not in {p["id"] for p in ok(other.get("/api/policies"))["items"]}
    assert ids["/api/datastores/"] not in {d["id"] for d in ok(other.get("/api/datastores"))["items"]}
    assert ids["{assetId}"] not in {x["id"] for x in ok(other.get("/api/assets"))["items"]}
    assert ids["/api/operations/"] not in {o["id"] for o in ok(other.get("/api/operations"))["items"]}
    assert ids["/api/v1/connectors/"] not in {c["id"] for c in ok(other.get("/api/v1/connectors"))["data"]}
    assert ids["/api/v1/scans/"] not in {s["scan_id"] for s in ok(other.get("/api/v1/scans"))["data"]}
    # A's resources are all still there, untouched
    a = world["a"].admin
    assert ok(a.get(f"/api/policies/{ids['/api/policies/']}"))["name"] != "taken"
    assert ok(a.get(f"/api/assets/{ids['{assetId}']}/monitors/{ids['{monitorId}']}"))["enabled"] is True
    assert ids["/api/tokens/"] in {t["id"] for t in ok(a.get("/api/tokens"))["items"]}
    assert ok(a.get(f"/api/v1/connectors/{ids['/api/v1/connectors/']}"))["data"]["name"] == "Lake"
    assert ids["/api/v1/detectors/custom/"] in {d["id"] for d in ok(a.get("/api/v1/detectors/custom"))["data"]}
    assert ids["/api/v1/allowlist/"] in {x["id"] for x in ok(a.get("/api/v1/allowlist"))["data"]}
    assert ok(other.get("/api/v1/detectors/custom"))["data"] == [] and ok(other.get("/api/v1/allowlist"))["data"] == []


# --- Idempotency-Key ---------------------------------------------------------------------

def test_a_viewer_replaying_a_members_key_is_refused(world):
    a = world["a"]
    key = uuid.uuid4().hex
    body, _, _ = compliance_scan(a.member)
    first = ok(a.member.post("/api/scan/run", json=body, headers={"Idempotency-Key": key}))
    r = a.viewer.post("/api/scan/run", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 403 and r.json()["error"] == "FORBIDDEN", r.text
    again = a.member.post("/api/scan/run", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json() == first and again.headers["idempotent-replayed"] == "true"
    # another token of the same workspace has keys of its own: the same key runs a new scan
    other = ok(a.admin.post("/api/scan/run", json=body, headers={"Idempotency-Key": key}))
    assert other["scan_id"] != first["scan_id"]


def test_the_same_key_with_another_body_is_422(world):
    a = world["a"]
    key = uuid.uuid4().hex
    ok(a.member.post("/api/policies", json={"name": "one", "rules": BIG}, headers={"Idempotency-Key": key}), 201)
    r = a.member.post("/api/policies", json={"name": "two", "rules": BIG}, headers={"Idempotency-Key": key})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "UNPROCESSABLE_ENTITY" and r.json()["message"]
    # the same key on another route is another key
    ok(a.member.post("/api/datastores", json={"name": "x", "type": "local_dir", "path": "nowhere"},
                     headers={"Idempotency-Key": key}), 400)


def test_a_retried_token_creation_never_shows_or_keeps_the_secret(system, world):
    a = world["a"]
    key = uuid.uuid4().hex
    first = ok(a.admin.post("/api/tokens", json={"role": "Viewer", "user": "retry@example.com"},
                            headers={"Idempotency-Key": key}), 201)
    assert first["token"]
    retry = ok(a.admin.post("/api/tokens", json={"role": "Viewer", "user": "retry@example.com"},
                            headers={"Idempotency-Key": key}), 201)
    assert retry["token"] is None and retry["id"] == first["id"] and retry["role"] == "Viewer"
    assert [t["id"] for t in ok(a.admin.get("/api/tokens"))["items"]].count(first["id"]) == 1
    with system.client() as bootstrap:
        ws_key = uuid.uuid4().hex
        made = ok(bootstrap.post("/api/workspaces", json={"name": "Retry"}, headers={"Idempotency-Key": ws_key}), 201)
        again = ok(bootstrap.post("/api/workspaces", json={"name": "Retry"}, headers={"Idempotency-Key": ws_key}), 201)
    assert again["id"] == made["id"] and again["admin_token"]["token"] is None
    assert again["admin_token"]["id"] == made["admin_token"]["id"]
    # no secret anywhere in the database (its WAL included)
    content = databases.stored_text(system.db_url)
    assert first["token"] not in content and made["admin_token"]["token"] not in content
    with contextlib.closing(connect(system.db_url)) as db:
        assert db.execute("SELECT count(*) FROM idempotency_requests WHERE key = ?", (key,)).fetchone()[0] == 1


def test_a_retry_after_the_api_died_before_keeping_its_answer_is_the_same_scan(world, system):
    """The API wrote the scan's command, then died before it kept the answer: the key is left pending
    and expires, and the client's retry runs the request again. It names the same scan, once."""
    a = world["a"]
    body, _, _ = compliance_scan(a.member)
    sensitive = {"connectors": [world["ids"]["/api/v1/connectors/"]], "type": "full"}

    def died_and_retried(path: str, payload: dict, status: int) -> tuple[dict, dict]:
        key = uuid.uuid4().hex
        first = ok(a.member.post(path, json=payload, headers={"Idempotency-Key": key}), status)
        with contextlib.closing(connect(system.db_url)) as db:  # what a pending key of a dead API comes to
            db.execute("DELETE FROM idempotency_requests WHERE key = ?", (key,))
        return first, ok(a.member.post(path, json=payload, headers={"Idempotency-Key": key}), status)

    runs_before = ok(a.member.get("/api/operations"))["total"]
    first, again = died_and_retried("/api/scan/run", body, 200)
    assert again["scan_id"] == first["scan_id"]
    until(lambda: ok(a.member.get("/api/operations"))["total"] > runs_before)
    assert ok(a.member.get("/api/operations"))["total"] == runs_before + 1  # one run, one run id
    runs_before = ok(a.member.get("/api/operations"))["total"]
    first, again = died_and_retried("/api/v1/scans/parallel", sensitive, 201)
    assert again["data"]["scan_id"] == first["data"]["scan_id"]
    listed = [s["scan_id"] for s in ok(a.member.get("/api/v1/scans", params={"limit": 100}))["data"]]
    assert listed.count(first["data"]["scan_id"]) == 1
    until(lambda: ok(a.member.get("/api/operations"))["total"] > runs_before)
    assert ok(a.member.get("/api/operations"))["total"] == runs_before + 1  # a sensitive scan: one run id too
    assert ok(a.member.post("/api/v1/scans/parallel", json=sensitive), 201)["data"]["scan_id"] != \
        first["data"]["scan_id"]  # without a key, a new scan


def test_concurrent_requests_with_one_key_make_one_scan(world):
    a = world["a"]
    body, _, _ = compliance_scan(a.member)
    key = uuid.uuid4().hex

    def send(_):  # a client per thread, as ten separate retries would be
        with httpx.Client(base_url=a.member.base_url, headers=a.member.headers, timeout=120) as client:
            return client.post("/api/scan/run", json=body, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, range(10)))
    assert all(r.status_code in (200, 409) for r in answers), [r.text for r in answers]
    scans = {r.json()["scan_id"] for r in answers if r.status_code == 200}
    assert len(scans) == 1, scans
    conflicts = [r for r in answers if r.status_code == 409]
    assert all(r.json()["error"] == "CONFLICT" for r in conflicts)


def test_a_viewer_cannot_trigger_with_or_without_a_key(world):
    r = world["a"].viewer.post("/api/scan/run", headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 403, r.text


# --- CSV identifiers ---------------------------------------------------------------------

def test_csv_identifiers_keep_their_text_through_a_scan(world):
    csv = (b"Txn ID,Account ID,Amount,Date\n"
           b"12345678901234567890,000123,100.00,2024-01-15T10:00:00Z\n"
           b"12345678901234567891,123,200.00,2024-01-15T11:00:00Z\n"
           b"12345678901234567892,1.50,300.00,2024-01-15T12:00:00Z\n"
           b"12345678901234567893,1.5,400.00,2024-01-15T13:00:00Z\n")
    rules = [{"id": "dup", "name": "Dup", "type": "duplicate", "severity": "high", "params": {"fields": ["Txn ID"]}},
             {"id": "six", "name": "Six digits", "type": "pattern", "severity": "low",
              "params": {"field": "account", "regex": "^[0-9]{6}$"}},
             {"id": "vel", "name": "One a day", "type": "velocity", "severity": "medium",
              "params": {"group_by": "account", "window": "daily", "max_count": 1}}]
    _, scan_id, scan = compliance_scan(world["a"].member, csv, rules)
    assert scan["status"] == "completed", scan
    found = ok(world["a"].member.get(f"/api/scan/{scan_id}/violations"))["items"]
    assert sorted((v["rule_id"], v.get("account")) for v in found) == [
        ("six", "1.5"), ("six", "1.50"), ("six", "123")], found


# --- datastores over the system's own data, per-workspace roots, bootstrap rotation --------

def test_own_data_is_never_a_datastore_and_rotation_revokes_the_old_admin(kafka, tmp_path):
    """A system whose data dir is inside the default workspace's datastore root."""
    root = tmp_path / "root"
    data_dir = root / "default" / ".scanledger"
    data_dir.mkdir(parents=True)
    (root / "default" / "lake").mkdir()
    (root / "default" / "lake" / "tx.csv").write_bytes(CSV)
    (root / "default" / "db.sqlite").symlink_to(data_dir / "scanledger.db")
    (root / "default" / "lake" / "blobs.csv").symlink_to(data_dir / "blobs")
    system = System(kafka, data_dir, SCANLEDGER_DATASTORE_ROOT=str(root), SCANLEDGER_DATASTORE_ROOT_PER_WORKSPACE="1")
    system.start()
    try:
        with system.client() as admin:
            for body in ({"type": "sqlite", "path": ".scanledger/scanledger.db"},
                         {"type": "sqlite", "path": "db.sqlite"},
                         {"type": "local_dir", "path": "."}, {"type": "local_dir", "path": ".scanledger"},
                         {"type": "local_dir", "path": "lake/../.scanledger/blobs"},
                         {"type": "local_dir", "path": "../default"}):
                r = admin.post("/api/datastores", json={"name": "evil", **body})
                assert r.status_code == 400 and r.json()["error"] == "VALIDATION_ERROR", (body, r.text)
            store = ok(admin.post("/api/datastores", json={"name": "ok", "type": "local_dir", "path": "lake"}), 201)
            sync = ok(admin.post(f"/api/datastores/{store['id']}/sync"), 202)
            assert [x["name"] for x in sync["assets"]] == ["tx.csv"]  # the link into the data dir is no file of it
            other = ok(admin.post("/api/workspaces", json={"name": "Tenant B"}), 201)
        (root / other["id"] / "mine").mkdir(parents=True)
        with system.client(other["admin_token"]["token"]) as b:
            r = b.post("/api/datastores", json={"name": "theirs", "type": "local_dir", "path": "../default/lake"})
            assert r.status_code == 400, r.text
            ok(b.post("/api/datastores", json={"name": "mine", "type": "local_dir", "path": "mine"}), 201)
        # a link that pointed at data and now points at the database is refused when it is read
        (root / other["id"] / "real.sqlite").write_bytes(b"")
        sqlite3.connect(root / other["id"] / "real.sqlite").close()
        link = root / other["id"] / "t.sqlite"
        link.symlink_to(root / other["id"] / "real.sqlite")
        with system.client(other["admin_token"]["token"]) as b:
            store = ok(b.post("/api/datastores", json={"name": "t", "type": "sqlite", "path": "t.sqlite"}), 201)
            real = root / other["id"] / "real.sqlite"  # the path it resolved to becomes a link to the database
            real.unlink()
            real.symlink_to(data_dir / "scanledger.db")
            r = b.post(f"/api/datastores/{store['id']}/sync")
            assert r.status_code in (400, 409) and "tokens" not in r.text, r.text
        system.stop()
        system.env["SCANLEDGER_ADMIN_TOKEN"] = "rotated-admin-token"
        system.start()
        with system.client() as old, system.client("rotated-admin-token") as new:
            assert old.get("/api/tokens").status_code == 401
            assert new.get("/api/tokens").status_code == 200
            assert new.post("/api/workspaces", json={"name": "After rotation"}).status_code == 201
            assert old.post("/api/workspaces", json={"name": "Old admin"}).status_code == 401
    finally:
        system.stop()
