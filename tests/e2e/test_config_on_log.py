"""Configuration on the log (issue 22), on the real system: every change to policies, uploads, mappings,
datastores, assets, monitors, connectors, detectors, the allow-list, workspaces and tokens is a
ConfigChanged on the config topic, made by whoever changed it; a scan names the version of each row
it ran with, and that version on the log is what it ran with; replay rebuilds the config (as of an
instant too), and the log holds no secret. (test_replay_restart compares every config table of the
whole suite's database with a replay, once every module has changed its config.)"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

import pytest

from harness import data, databases
from services.adapters.command_writer import CommandWriter
from services.adapters.db import connect
from services.domain import contracts as c
from services.settings import Settings, Topics
from services.stores import config_log, config_store
from services.stores.config_log import LOGGED
from tests.e2e.helpers import confirm, upload
from tests.e2e.monitor_fixtures import in_workspace, sync, wait_finished
from tests.e2e.test_history import history
from tests.e2e.test_operations import start_compliance, wait_result
from tests.e2e.test_sensitive_scans import until


def ok(r, status=201):
    assert r.status_code == status, r.text
    return r.json()


def config_history(system, *args: str) -> list[dict]:
    out = system.cli("config-history", *args, "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


def instant() -> str:
    time.sleep(0.05)  # the broker's clock stamps what comes next after this instant
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.05)
    return at


def table_rows(where, table: str, workspace: str | None = None) -> list[dict]:
    with contextlib.closing(databases.connect_read(where)) as conn:
        rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {LOGGED[table]}")]
    return [r for r in rows if workspace is None or r.get("workspace_id", r.get("id")) == workspace]


@pytest.fixture(scope="module")
def ws(system):
    with in_workspace(system, "Config audit") as ws:
        ws.token = {t["role"]: t["id"] for t in ws.admin.get("/api/tokens").json()["items"]}
        yield ws


@pytest.fixture(scope="module")
def story(system, ws):
    """A policy made, changed, scanned with, changed again; another made and deleted; a monitor scan and a
    sensitive-data scan over config of their own; an instant recorded between the policy's changes."""
    a, m = ws.admin, ws.member
    rules = data.RULES[:2]
    policy = ok(a.post("/api/policies", json={"name": "v1", "rules": rules}))
    ok(m.put(f"/api/policies/{policy['id']}", json={"name": "v2", "rules": data.RULES[:3]}), 200)
    up = upload(a, data.to_csv(data.transactions(300, seed=5)))
    mapping = confirm(a, up["upload_id"])
    scan_id, run_id = start_compliance(a, policy["id"], up, mapping)
    wait_result(a, run_id)
    between = instant()
    ok(a.put(f"/api/policies/{policy['id']}", json={"name": "v3", "rules": rules}), 200)
    doomed = ok(a.post("/api/policies", json={"name": "doomed", "rules": rules}))
    assert a.delete(f"/api/policies/{doomed['id']}").status_code == 204

    lake = system.datastore_root / "config-lake"
    lake.mkdir()
    (lake / "people.csv").write_text("name,email\nann,ann@example.com\n")
    store = ok(a.post("/api/datastores", json={"name": "Lake", "type": "local_dir", "path": lake.name}))
    asset = sync(a, store["id"])[0]
    monitor = ok(a.post(f"/api/assets/{asset['id']}/monitors", json={
        "name": "Rows", "type": "record_count", "params": {"min": 1}}))
    execution = ok(m.post("/api/scan/run"), 202)["data"]["executionId"]
    wait_finished(a, execution)

    connector = ok(a.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                     "config": {"path": lake.name}}))["data"]
    detector = ok(a.post("/api/v1/detectors/custom", json={"name": "emp_id", "pattern": "EMP-[0-9]{6}"}))["data"]
    allowed = ok(a.post("/api/v1/allowlist", json={"value": "ann@example.com"}))["data"]
    sensitive = ok(m.post("/api/v1/scans/parallel", json={"connectors": [connector["id"]], "type": "full"}))["data"]
    token = ok(a.post("/api/tokens", json={"role": "Viewer", "user": "auditor@example.com"}))
    assert a.delete(f"/api/tokens/{token['id']}").status_code == 204
    return dict(policy=policy, doomed=doomed, up=up, mapping=mapping, scan_id=scan_id, between=between,
                store=store, asset=asset, monitor=monitor, execution=execution, connector=connector,
                detector=detector, allowed=allowed, sensitive=sensitive["scan_id"], token=token)


def run_scan(client, scan_id) -> dict:
    (run,) = [i for i in history(client, scan_id) if i["type"] == c.RUN_SCAN]
    return run["data"]


def ran_with(client, scan_id) -> dict[tuple[str, str], int]:
    return {(v["table"], v["key"]): v["version"] for v in run_scan(client, scan_id)["config_versions"]}


def test_every_change_is_on_the_log_by_whom_in_order(system, ws, story):
    versions = config_history(system, "--table", "policies", "--key", story["policy"]["id"])
    assert [v["row"]["name"] for v in versions] == ["v1", "v2", "v3"]
    assert [(v["actor_id"], v["actor_role"]) for v in versions] == [
        (ws.token["Admin"], "Admin"), (ws.token["Member"], "Member"), (ws.token["Admin"], "Admin")]
    assert all(v["workspace_id"] == ws.id for v in versions)
    assert [v["version"] for v in versions] == sorted(v["version"] for v in versions)
    doomed = config_history(system, "--table", "policies", "--key", story["doomed"]["id"])
    assert [v["row"] and v["row"]["name"] for v in doomed] == ["doomed", None]  # made, then deleted
    revoked = [v["row"] for v in config_history(system, "--table", "tokens") if v["row"]["id"] == story["token"]["id"]]
    assert [r["revoked_at"] is None for r in revoked] == [True, False]


def test_a_scan_names_the_version_it_ran_with_and_that_version_is_what_it_ran(system, ws, story):
    used = ran_with(ws.admin, story["scan_id"])
    assert set(used) == {("policies", story["policy"]["id"]), ("uploads", story["up"]["upload_id"]),
                         ("mappings", story["mapping"]["mapping_id"])}
    policy = {v["version"]: v["row"] for v in config_history(system, "--table", "policies")}
    in_force = policy[used["policies", story["policy"]["id"]]]
    carried = run_scan(ws.admin, story["scan_id"])["policy"]
    assert in_force["name"] == carried["name"] == "v2"
    assert [r for r in json.loads(in_force["rules"]) if r["active"]] == carried["rules"]
    assert [r["id"] for r in carried["rules"]] == [r["id"] for r in data.RULES[:3]]

    monitor_scan = ran_with(ws.admin, story["execution"])
    assert {t for t, _ in monitor_scan} == {"monitors", "assets", "datastores"}
    assert ("monitors", story["monitor"]["id"]) in monitor_scan
    assert ("datastores", str(story["store"]["id"])) in monitor_scan

    sensitive = ran_with(ws.admin, story["sensitive"])
    assert set(sensitive) == {("connectors", story["connector"]["id"]), ("custom_detectors", story["detector"]["id"]),
                              ("allowlist", story["allowed"]["id"])}


def test_replay_as_of_an_instant_rebuilds_the_config_then(system, ws, story, tmp_path):
    target = databases.scratch(tmp_path, "then")
    system.cli("replay", "--as-of", story["between"], "--into", target)
    (then,) = table_rows(target, "policies", ws.id)
    assert (then["id"], then["name"]) == (story["policy"]["id"], "v2")  # not v3, and no "doomed" yet
    live = {p["id"]: p for p in table_rows(system.db_url, "policies", ws.id)}
    assert live[story["policy"]["id"]]["name"] == "v3" and story["doomed"]["id"] not in live
    assert table_rows(target, "monitors", ws.id) == []  # made after the instant


def test_the_log_holds_hashes_and_references_never_a_secret(system, ws, story):
    everything = system.cli("config-history", "--json").stdout
    secret = ws.admin.headers["authorization"].partition(" ")[2]
    assert secret not in everything
    assert config_store.hash_token(secret) in everything
    (connector,) = [v for v in config_history(system, "--table", "connectors") if v["key"] == story["connector"]["id"]]
    assert json.loads(connector["row"]["config"])["path"] == "config-lake"
    allowed = [v for v in config_history(system, "--table", "allowlist") if v["key"] == story["allowed"]["id"]]
    assert "ann@example.com" not in json.dumps(allowed)  # kept as a hash


def test_a_change_on_the_log_whose_transaction_never_committed_arrives_all_the_same(system, ws):
    """The API died between the broker's ack and COMMIT: the row follows its event, through the projector.
    (The API's own steps, api.web.changes, with the process's death as a connection closed mid-transaction.)"""
    settings = Settings.from_env(kafka_bootstrap=system.env["KAFKA_BOOTSTRAP_SERVERS"],
                                 topics=Topics(system.env["SCANLEDGER_TOPIC_PREFIX"]))
    writer = CommandWriter(settings)
    conn = connect(system.db_url)
    try:
        conn.execute("BEGIN IMMEDIATE")
        before = config_log.last_seq(conn)
        orphan = config_store.add_policy(conn, ws.id, "orphan", None, data.RULES[:1])
        (_, event), = config_log.pending_events(conn, (ws.token["Admin"], "Admin"), before, writer.timeout_s)
        written = asyncio.run(writer.write(settings.topics.config, event))
    finally:
        conn.close()  # no COMMIT: the row is rolled back, its event is on the log
        writer.close()
    r = until(lambda: (r := ws.viewer.get(f"/api/policies/{orphan['id']}")).status_code != 404 and r)
    assert r.status_code == 200 and r.json()["name"] == "orphan"
    (version,) = config_history(system, "--table", "policies", "--key", orphan["id"])
    assert version["version"] == written.offset and version["actor_id"] == ws.token["Admin"]
