"""Real answers against the OpenAPI document (issue 25): a workspace's whole day on the real system (broker,
worker, projector, API) — a compliance scan with its violations and one of them resolved, its policy, its
run in the Activity list and its ledger; a datastore synced, a monitor and a monitor scan; a sensitive
scan on /api/v1 with its workers, findings and files, a BYOC scan's worker reports and its cancel,
detectors and the allow-list; each run of the Activity list in full — and every JSON body any of it
answered is validated with jsonschema against the schema /openapi.json gives its operation and status.
The same for each kind of scan accepted while no worker takes it up (the pending views). The schemathesis
run (test_openapi_conformance.py) reaches few of these answers: its generated ids are mostly unknown ones."""
from __future__ import annotations

import os
import re
import signal
import uuid

import httpx
import jsonschema
import pytest

from harness import data
from harness.system import System
from tests.e2e.helpers import all_violations, confirm, ok, policy, scan_once, until, upload, wait_settled
from tests.e2e.monitor_fixtures import in_workspace, sync, wait_finished

# the operations whose answers this day must reach, each with a body to check
MUST_REACH = {
    "POST /api/policies", "GET /api/policies", "GET /api/policies/{id}", "PUT /api/policies/{id}",
    "POST /api/upload", "POST /api/mapping/confirm", "POST /api/scan/run", "GET /api/scan/{id}",
    "GET /api/scan/{id}/violations", "PATCH /api/violations/{id}", "GET /api/operations",
    "GET /api/operations/{id}", "GET /api/operations/{id}/containers", "GET /api/scans/{id}/history",
    "GET /api/tokens", "POST /api/tokens", "POST /api/datastores", "GET /api/datastores", "GET /api/datastores/{id}",
    "POST /api/datastores/{id}/sync", "GET /api/assets", "GET /api/assets/{assetId}",
    "POST /api/assets/{assetId}/monitors", "GET /api/assets/{assetId}/monitors",
    "GET /api/assets/{assetId}/monitors/{monitorId}", "PATCH /api/assets/{assetId}/monitors/{monitorId}",
    "GET /api/scan/status/{executionId}", "GET /api/assets/scan-status",
    "POST /api/v1/connectors", "GET /api/v1/connectors", "GET /api/v1/connectors/{id}",
    "POST /api/v1/scans/parallel", "GET /api/v1/scans", "GET /api/v1/scans/{id}", "GET /api/v1/scans/{id}/workers",
    "GET /api/v1/scans/{id}/findings", "GET /api/v1/scans/{id}/files", "GET /api/v1/detectors",
    "POST /api/v1/detectors/custom", "GET /api/v1/detectors/custom", "POST /api/v1/allowlist",
    "GET /api/v1/allowlist", "DELETE /api/v1/allowlist/{id}", "DELETE /api/v1/detectors/custom/{id}",
    "GET /api/v1/scans/{id}/deployment-config", "POST /api/v1/scans/{id}/report", "POST /api/v1/scans/{id}/cancel",
    "DELETE /api/v1/connectors/{id}", "PUT /api/operations/rerun/{id}",
}


class Answers:
    """Every JSON answer a client got, with the operation of the document it answers."""

    def __init__(self, doc: dict):
        self.doc, self.seen = doc, []
        self.operations = [(re.compile("^" + re.sub(r"{\w+}", "[^/]+", path) + "$"), path)
                           for path in sorted(doc["paths"], key=lambda p: p.count("{"))]  # literal paths first

    def record(self, response: httpx.Response) -> None:
        response.read()
        if response.headers.get("content-type", "").startswith("application/json"):
            path = next(p for regex, p in self.operations if regex.match(response.request.url.path))
            self.seen.append((response.request.method, path, str(response.status_code), response.json()))

    def schema(self, method: str, path: str, status: str) -> dict:
        answer = self.doc["paths"][path][method.lower()]["responses"][status]
        return {**answer["content"]["application/json"]["schema"], "components": self.doc["components"]}


@pytest.fixture(scope="module")
def day(system):
    doc = httpx.get(f"{system.url}/openapi.json").json()
    answers = Answers(doc)
    root = f"bodies-{uuid.uuid4().hex[:6]}"
    (system.datastore_root / root / "lake").mkdir(parents=True)
    (system.datastore_root / root / "lake" / "orders.csv").write_text(
        "order_id,email,amount\n1,jane.doe@example.com,10\n2,,20\n3,joe@example.org,30\n")
    with in_workspace(system, "Bodies") as ws:
        hooks = {"response": [answers.record]}
        for client in (ws.admin, ws.member, ws.viewer):
            client.event_hooks = hooks
        _compliance(ws.admin)
        _monitors(ws.admin, f"{root}/lake")
        _sensitive(system, ws.admin, f"{root}/lake")
        _runs(ws.admin)
        r = ws.admin.post("/api/tokens", json={"role": "Viewer", "user": "auditor@example.com"})
        assert r.status_code == 201 and ws.admin.get("/api/tokens").status_code == 200, r.text
    return answers


def _compliance(api: httpx.Client) -> None:
    pol = policy(api, name="Bodies AML")
    assert api.get(f"/api/policies/{pol['id']}").status_code == 200
    assert api.get("/api/policies").status_code == 200
    rows = data.transactions(1500, seed=7)
    scan_id, scan = scan_once(api, rows, pol["id"], audit_name="bodies", audit_id="audit-1")
    assert scan["status"] == "completed" and scan["violation_count"] > 0, scan
    violations = all_violations(api, scan_id)
    assert api.get(f"/api/scan/{scan_id}/violations", params={"severity": "high", "size": 3}).status_code == 200
    r = api.patch(f"/api/violations/{violations[0]['id']}", json={"status": "resolved"})
    assert r.status_code == 200, r.text
    api.get(f"/api/scan/{scan_id}")  # its score history now has the resolution
    scan_once(api, data.transactions(1200, seed=8), pol["id"])  # a second scan of the policy: a delta
    assert api.put(f"/api/policies/{pol['id']}", json={"name": "edited", "rules": data.RULES[:2]}).status_code == 200
    assert api.get(f"/api/scans/{scan_id}/history", params={"limit": 50}).status_code == 200
    run = next(r for r in api.get("/api/operations").json()["items"] if r["type"] == "scan")
    r = api.put(f"/api/operations/rerun/{run['id']}")
    assert r.status_code == 200, r.text
    wait_settled(api, api.get(f"/api/operations/{r.json()['id']}").json()["scan_id"])


def _runs(api: httpx.Client) -> None:
    """Every run of the day in the Activity list, in full and its containers: each kind's shape."""
    runs = api.get("/api/operations", params={"sort_created": "desc", "size": 100}).json()["items"]
    assert {r["type"] for r in runs} >= {"catalog", "scan"}, runs
    for run in runs:
        detail = api.get(f"/api/operations/{run['id']}").json()
        assert api.get(f"/api/operations/{run['id']}/containers").status_code == 200
        # any kind's run read as a scan (seed 001's page) and as an execution (seed 000's)
        assert api.get(f"/api/scan/{detail['scan_id']}").status_code == 200
        assert api.get(f"/api/scan/status/{detail['scan_id']}").status_code == 200
        assert api.get(f"/api/scan/{detail['scan_id']}/violations").status_code == 200


def _monitors(api: httpx.Client, path: str) -> None:
    r = api.post("/api/datastores", json={"name": "Bodies lake", "type": "local_dir", "path": path})
    assert r.status_code == 201, r.text
    store = r.json()
    assert api.get("/api/datastores").status_code == api.get(f"/api/datastores/{store['id']}").status_code == 200
    [asset] = sync(api, store["id"])
    assert api.get(f"/api/assets/{asset['id']}").status_code == 200
    r = api.post(f"/api/assets/{asset['id']}/monitors", json={
        "name": "Email nulls", "type": "null_rate", "params": {"column": "email", "max": 0.0}, "severity": "high"})
    assert r.status_code == 201, r.text
    monitor = r.json()
    assert api.get(f"/api/assets/{asset['id']}/monitors").status_code == 200
    assert api.get(f"/api/assets/{asset['id']}/monitors/{monitor['id']}").status_code == 200
    r = api.patch(f"/api/assets/{asset['id']}/monitors/{monitor['id']}", json={"name": "Email present"})
    assert r.status_code == 200, r.text
    r = api.post("/api/scan/run")
    assert r.status_code == 202, r.text
    execution_id = r.json()["data"]["executionId"]
    wait_finished(api, execution_id)
    assert api.get(f"/api/scan/{execution_id}").status_code == 200  # a monitor scan read as a scan
    assert api.get("/api/assets/scan-status").status_code == 200


def _sensitive(system, api: httpx.Client, path: str) -> None:
    connector = ok(api.post("/api/v1/connectors", json={"name": "Bodies", "type": "local_dir",
                                                         "config": {"path": path}}), 201)
    ok(api.get("/api/v1/connectors"))
    ok(api.get(f"/api/v1/connectors/{connector['id']}"))
    custom = ok(api.post("/api/v1/detectors/custom", json={"name": "order_ref", "pattern": "ORD-[0-9]{6}",
                                                           "confidence": 0.7}), 201)
    allowed = ok(api.post("/api/v1/allowlist", json={"value": "joe@example.org", "label": "a test address"}), 201)
    ok(api.get("/api/v1/detectors"))
    ok(api.get("/api/v1/detectors/custom"))
    ok(api.get("/api/v1/allowlist"))
    ok(api.delete(f"/api/v1/allowlist/{allowed['id']}"))
    ok(api.delete(f"/api/v1/detectors/custom/{custom['id']}"))
    started = ok(api.post("/api/v1/scans/parallel", json={"connectors": [connector["id"]], "type": "full",
                                                           "options": {"max_workers": 2}}), 201)
    scan_id = started["scan_id"]
    done = until(lambda: (d := ok(api.get(f"/api/v1/scans/{scan_id}")))["status"] not in ("queued", "running")
                 and d)
    assert done["status"] == "completed" and done["progress"]["findings_count"] > 0, done
    ok(api.get(f"/api/v1/scans/{scan_id}/workers"))
    ok(api.get(f"/api/v1/scans/{scan_id}/findings", params={"limit": 1}))
    ok(api.get(f"/api/v1/scans/{scan_id}/files"))
    ok(api.get("/api/v1/scans", params={"connector": connector["id"]}))
    _byoc(system, api, connector["id"])
    ok(api.delete(f"/api/v1/connectors/{connector['id']}"))


def _byoc(system, api: httpx.Client, connector_id: str) -> None:
    """A scan whose workers run elsewhere: its deployment config, a worker's claim, heartbeat and release,
    its workers with the external one, and a cancel (nothing runs it here: it waits for its workers)."""
    started = ok(api.post("/api/v1/scans/parallel", json={
        "connectors": [connector_id], "type": "full", "options": {"max_workers": 1, "execution": "byoc"}}), 201)
    scan_id = started["scan_id"]
    config = until(lambda: (c := ok(api.get(f"/api/v1/scans/{scan_id}/deployment-config")))["chunks"] and c)
    report = config["environment"]["COORDINATOR_URL"]
    with system.client(config["environment"]["AUTH_TOKEN"]) as worker:
        worker.event_hooks = api.event_hooks
        chunk = ok(worker.post(report, json={"type": "claim", "worker_id": "bodies"}))["chunk"]
        lease = {"chunk_id": chunk["chunk_id"], "lease_id": chunk["lease_id"]}
        ok(worker.post(report, json={"type": "heartbeat", **lease}))
        ok(worker.post(report, json={"type": "claim", "worker_id": "second"}))  # none open: when to ask again
        ok(worker.post(report, json={"type": "release", **lease, "reason": "shutting down"}))
    assert any("external_worker" in w for w in ok(api.get(f"/api/v1/scans/{scan_id}/workers")))
    ok(api.post(f"/api/v1/scans/{scan_id}/cancel"))
    assert ok(api.get(f"/api/v1/scans/{scan_id}"))["status"] == "cancelled"


@pytest.fixture(scope="module")
def waiting(kafka, tmp_path_factory):
    """Scans accepted on the ledger that no worker has taken up (its worker stopped): each kind's answer
    while it waits, which a running system shows only for a moment."""
    root = tmp_path_factory.mktemp("waiting-root")
    (root / "lake").mkdir()
    (root / "lake" / "a.txt").write_text("jane.doe@example.com\n")
    system = System(kafka, tmp_path_factory.mktemp("waiting-system"), SCANLEDGER_DATASTORE_ROOT=str(root)).start()
    worker = system.processes["worker"].pid
    os.kill(worker, signal.SIGSTOP)
    try:
        with in_workspace(system, "Waiting") as ws:
            api = ws.admin
            answers = Answers(api.get("/openapi.json").json())
            api.event_hooks = {"response": [answers.record]}
            up = upload(api, data.to_csv(data.transactions(50, seed=9)))
            mapping = confirm(api, up["upload_id"])
            r = api.post("/api/scan/run", headers={"Prefer": "respond-async"}, json={
                "policy_id": policy(api)["id"], "upload_id": up["upload_id"], "mapping_id": mapping["mapping_id"]})
            assert r.status_code == 200, r.text
            scans = [r.json()["scan_id"], api.post("/api/scan/run").json()["data"]["executionId"]]
            connector = ok(api.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                "config": {"path": "lake"}}), 201)
            for kind in ("full", "incremental"):
                started = ok(api.post("/api/v1/scans/parallel", json={"connectors": [connector["id"]], "type": kind}),
                             201)
                scans.append(started["scan_id"])
                assert ok(api.get(f"/api/v1/scans/{started['scan_id']}"))["status"] == "queued"
                ok(api.get(f"/api/v1/scans/{started['scan_id']}/workers"))
            for scan_id in scans:
                assert api.get(f"/api/scan/{scan_id}").json()["status"] == "pending"
                assert api.get(f"/api/scan/status/{scan_id}").status_code == 200
            store = api.post("/api/datastores", json={"name": "Lake", "type": "local_dir", "path": "lake"}).json()
            sync = api.post(f"/api/datastores/{store['id']}/sync").json()  # a run's id: the sync's answer has it
            assert api.get(f"/api/operations/{sync['operation_id']}").json()["result"] == "queued"
            yield answers
    finally:
        os.kill(worker, signal.SIGCONT)
        system.stop()


def _conforms(answers: Answers) -> None:
    wrong = []
    for method, path, status, body in answers.seen:
        errors = list(jsonschema.Draft202012Validator(answers.schema(method, path, status)).iter_errors(body))
        wrong += [(method, path, status, e.json_path, e.message[:200]) for e in errors[:3]]
    assert not wrong, "\n".join(map(str, wrong[:30]))


def test_every_answer_of_a_workspaces_day_matches_its_schema_in_the_document(day):
    reached = {f"{method} {path}" for method, path, status, _ in day.seen if status.startswith("2")}
    assert reached >= MUST_REACH, sorted(MUST_REACH - reached)
    _conforms(day)


def test_a_scan_no_worker_has_taken_up_yet_answers_as_its_schema_says(waiting):
    reached = {f"{method} {path}" for method, path, status, _ in waiting.seen if status.startswith("2")}
    assert reached >= {"GET /api/scan/{id}", "GET /api/scan/status/{executionId}", "GET /api/v1/scans/{id}",
                       "GET /api/operations/{id}"}, reached
    _conforms(waiting)


def test_the_schemas_are_not_vacuous_a_wrong_body_fails_them(day):
    """The same check refuses a body with a field missing or of the wrong type: the schemas say something."""
    method, path, status, body = next(s for s in day.seen if s[:3] == ("GET", "/api/scan/{id}", "200")
                                      and s[3]["delta"] is not None)
    schema = day.schema(method, path, status)
    for broken in ({k: v for k, v in body.items() if k != "compliance_score"},
                   {**body, "violation_count": "many"},
                   {**body, "delta": {**body["delta"], "new_count": None}}):
        assert not jsonschema.Draft202012Validator(schema).is_valid(broken)
    _, _, _, scan = next(s for s in day.seen if s[:3] == ("GET", "/api/v1/scans/{id}", "200"))
    schema = day.schema("GET", "/api/v1/scans/{id}", "200")
    assert not jsonschema.Draft202012Validator(schema).is_valid(
        {**scan, "data": {**scan["data"], "coverage": {**scan["data"]["coverage"], "target_met": "yes"}}})
