"""Seed 004's connectors over HTTP on the real system (broker, worker, projector, API) and a real
S3 server (moto's, checking credentials): every type created, listed, read back and deleted,
validation errors, roles, workspaces, and the secrets the credentials point at in no response,
log or database file."""
from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from harness.system import System
from services.adapters.connectors import ConnectorError, connector_for
from services.settings import Settings, origin
from tests.e2e.monitor_fixtures import in_workspace

KEY_ID_ENV, SECRET_ENV = "SCANLEDGER_SECRET_E2E_KEY_ID", "SCANLEDGER_SECRET_E2E_SECRET"
FILE_SECRET = "file-secret-" + uuid.uuid4().hex  # a secret file's secret: refused by the server, never shown


@pytest.fixture(scope="module")
def world(kafka, s3_server, tmp_path_factory):
    root, secrets = tmp_path_factory.mktemp("connector-root"), tmp_path_factory.mktemp("connector-secrets")
    (root / "lake" / "sub").mkdir(parents=True)
    (root / "lake" / "people.csv").write_text("email\na@example.com\n")
    (root / "lake" / "sub" / "notes.txt").write_text("nothing here")
    with sqlite3.connect(root / "shop.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER, email TEXT)")
    (root / "export.db").write_text("id,email\n1,a@example.com\n")  # a CSV named .db
    (secrets / "s3.json").write_text(json.dumps({"access_key_id": s3_server.keys["aws_access_key_id"],
                                                 "secret_access_key": s3_server.keys["aws_secret_access_key"]}))
    (secrets / "refused.json").write_text(json.dumps({"access_key_id": s3_server.keys["aws_access_key_id"],
                                                      "secret_access_key": FILE_SECRET}))
    bucket = s3_server.bucket(f"e2e-{uuid.uuid4().hex[:8]}", {"exports/a.csv": b"email\nb@example.com\n"})
    system = System(kafka, tmp_path_factory.mktemp("connector-system"), SCANLEDGER_DATASTORE_ROOT=str(root),
                    SCANLEDGER_SECRETS_DIR=str(secrets), SCANLEDGER_S3_ENDPOINTS=s3_server.url,
                    **{KEY_ID_ENV: s3_server.keys["aws_access_key_id"],
                       SECRET_ENV: s3_server.keys["aws_secret_access_key"]})
    system.start()
    try:
        with in_workspace(system, "Connectors A") as a, in_workspace(system, "Connectors B") as b:
            yield {"system": system, "a": a, "b": b, "bucket": bucket, "s3": s3_server, "answers": []}
    finally:
        system.stop()
    # no secret in any answer the tests saw, in any log or in the database
    secrets_ = (s3_server.keys["aws_secret_access_key"], FILE_SECRET)
    for text in world_texts(system):
        assert not any(s in text for s in secrets_)


def world_texts(system):
    for path in list(system.data_dir.glob("*.log")) + list(system.data_dir.glob("scanledger.db*")):
        yield path.read_bytes().decode("latin-1")


def answer(world, r: httpx.Response, status: int) -> dict:
    world["answers"].append(r.text)
    assert r.status_code == status, r.text
    for secret in (world["s3"].keys["aws_secret_access_key"], FILE_SECRET):
        assert secret not in r.text
    return r.json()


def s3_body(world, **credentials) -> dict:
    return {"name": "Exports", "type": "s3", "config": {
        "bucket": world["bucket"], "prefix": "exports/", "endpoint_url": world["s3"].url, "region": "us-east-1",
        "credentials": credentials or {"source": "env", "access_key_id_env": KEY_ID_ENV,
                                       "secret_access_key_env": SECRET_ENV}}}


BODIES = {
    "local_dir": lambda world: {"name": "Lake", "type": "local_dir", "config": {"path": "lake"}},
    "sqlite": lambda world: {"name": "Shop", "type": "sqlite", "config": {"path": "shop.db"}},
    "s3": s3_body,
    "s3-file": lambda world: s3_body(world, source="file", path="s3.json"),
}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_create_list_get_delete(world, kind):
    admin = world["a"].admin
    body = BODIES[kind](world)
    created = answer(world, admin.post("/api/v1/connectors", json=body), 201)
    assert created["status"] == "success"
    connector = created["data"]
    assert connector["id"].startswith("conn-") and connector["name"] == body["name"]
    assert connector["type"] == body["type"]
    expected = {"region": "us-east-1", **body["config"]} if body["type"] == "s3" else body["config"]
    assert connector["config"] == expected  # as registered: paths relative to the root, credentials by reference
    assert connector["created_at"] and connector["updated_at"]
    listed = answer(world, admin.get("/api/v1/connectors"), 200)
    assert listed["status"] == "success" and connector in listed["data"]
    assert answer(world, admin.get(f"/api/v1/connectors/{connector['id']}"), 200) == {"status": "success",
                                                                                      "data": connector}
    deleted = answer(world, admin.delete(f"/api/v1/connectors/{connector['id']}"), 200)
    assert deleted == {"status": "success", "data": {"id": connector["id"], "deleted": True}}
    gone = answer(world, admin.get(f"/api/v1/connectors/{connector['id']}"), 404)
    assert gone["error"] == "NOT_FOUND" and gone["message"] == "Connector not found"
    assert connector["id"] not in {c["id"] for c in answer(world, admin.get("/api/v1/connectors"), 200)["data"]}
    answer(world, admin.delete(f"/api/v1/connectors/{connector['id']}"), 404)


@pytest.mark.parametrize("body,path", [
    ({}, ["name"]),
    ({"name": "x", "type": "ftp", "config": {}}, ["type"]),
    ({"name": "x", "type": "local_dir"}, ["config"]),
    ({"name": "x", "type": "local_dir", "config": {"path": "lake"}, "extra": 1}, ["extra"]),
    ({"name": "", "type": "local_dir", "config": {"path": "lake"}}, ["name"]),
    ({"name": "x", "type": "local_dir", "config": {}}, ["config", "path"]),
    ({"name": "x", "type": "local_dir", "config": {"path": "../"}}, ["config", "path"]),
    ({"name": "x", "type": "local_dir", "config": {"path": "/etc"}}, ["config", "path"]),
    ({"name": "x", "type": "local_dir", "config": {"path": "shop.db"}}, ["config", "path"]),
    ({"name": "x", "type": "sqlite", "config": {"path": "lake"}}, ["config", "path"]),
    ({"name": "x", "type": "sqlite", "config": {"path": "missing.db"}}, ["config", "path"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "Not_A_Bucket", "credentials": {"source": "anonymous"}}},
     ["config", "bucket"]),
    ({"name": "x", "type": "sqlite", "config": {"path": "export.db"}}, ["config", "path"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "lake"}}, ["config", "credentials"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "lake", "credentials": {"access_key_id_env": "X"}}},
     ["config", "credentials", "source"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "lake", "credentials": {"source": "vault"}}},
     ["config", "credentials", "source"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "lake", "endpoint_url": "file:///etc/passwd",
                                            "credentials": {"source": "anonymous"}}}, ["config", "endpoint_url"]),
    # an address the operator did not list in SCANLEDGER_S3_ENDPOINTS (here: the API's own metadata-like peer)
    ({"name": "x", "type": "s3", "config": {"bucket": "lake", "endpoint_url": "http://169.254.169.254",
                                            "credentials": {"source": "anonymous"}}}, ["config", "endpoint_url"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "lake", "credentials": {
        "source": "env", "access_key_id_env": "SCANLEDGER_ADMIN_TOKEN", "secret_access_key_env": SECRET_ENV}}},
     ["config", "credentials"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "lake", "credentials": {
        "source": "env", "access_key_id_env": "SCANLEDGER_SECRET_UNSET", "secret_access_key_env": SECRET_ENV}}},
     ["config", "credentials"]),
    ({"name": "x", "type": "s3", "config": {"bucket": "lake", "credentials": {"source": "file",
                                                                              "path": "../s3.json"}}},
     ["config", "credentials"]),
])
def test_bad_bodies_are_400_with_details(world, body, path):
    r = answer(world, world["a"].member.post("/api/v1/connectors", json=body), 400)
    assert r["error"] == "VALIDATION_ERROR" and r["message"]
    assert any(d["path"][:len(path)] == path for d in r["details"]), r["details"]


def test_malformed_json_and_a_secret_given_inline(world, s3_server):
    member = world["a"].member
    r = answer(world, member.post("/api/v1/connectors", content=b"{nope",
                                  headers={"content-type": "application/json"}), 400)
    assert r["error"] == "VALIDATION_ERROR"
    answer(world, member.post("/api/v1/connectors", json=["a"]), 400)
    inline = s3_body(world)
    inline["config"]["credentials"] = {"source": "env", "access_key_id_env": KEY_ID_ENV,
                                       "secret_access_key_env": SECRET_ENV,
                                       "secret_access_key": s3_server.keys["aws_secret_access_key"]}
    r = answer(world, member.post("/api/v1/connectors", json=inline), 400)  # answer() checks it is not echoed
    assert r["error"] == "VALIDATION_ERROR"


def test_roles_and_workspaces(world):
    a, b, system = world["a"], world["b"], world["system"]
    body = BODIES["local_dir"](world)
    mine = answer(world, a.member.post("/api/v1/connectors", json=body), 201)["data"]
    # a Viewer reads, never writes
    assert mine in answer(world, a.viewer.get("/api/v1/connectors"), 200)["data"]
    answer(world, a.viewer.get(f"/api/v1/connectors/{mine['id']}"), 200)
    for r in (a.viewer.post("/api/v1/connectors", json=body), a.viewer.delete(f"/api/v1/connectors/{mine['id']}")):
        assert answer(world, r, 403)["error"] == "FORBIDDEN"
    # another workspace's connector does not exist for B, and B's list does not show it
    for r in (b.admin.get(f"/api/v1/connectors/{mine['id']}"), b.admin.delete(f"/api/v1/connectors/{mine['id']}")):
        assert answer(world, r, 404)["error"] == "NOT_FOUND"
    assert mine["id"] not in {c["id"] for c in answer(world, b.admin.get("/api/v1/connectors"), 200)["data"]}
    # no token, or a wrong one: 401
    with httpx.Client(base_url=system.url, timeout=60) as anonymous, system.client("not-a-token") as wrong:
        for client in (anonymous, wrong):
            for r in (client.get("/api/v1/connectors"), client.post("/api/v1/connectors", json=body),
                      client.get(f"/api/v1/connectors/{mine['id']}"),
                      client.delete(f"/api/v1/connectors/{mine['id']}")):
                assert answer(world, r, 401)["error"] == "UNAUTHORIZED"
    # still there, untouched; an Admin of A may delete it
    answer(world, a.admin.get(f"/api/v1/connectors/{mine['id']}"), 200)
    answer(world, a.admin.delete(f"/api/v1/connectors/{mine['id']}"), 200)


def test_an_s3_connector_reads_the_bucket_it_names(world):
    """The registered config is what the scan will open: through the registry, on the real server."""
    created = answer(world, world["a"].admin.post("/api/v1/connectors", json=BODIES["s3"](world)), 201)["data"]
    os.environ[KEY_ID_ENV] = world["s3"].keys["aws_access_key_id"]
    os.environ[SECRET_ENV] = world["s3"].keys["aws_secret_access_key"]
    try:
        conn = connector_for(Settings(s3_endpoints=(origin(world["s3"].url),)), world["a"].id, "s3", created["config"])
        assert [r.name for r in conn.list_resources()] == ["exports/a.csv"]
        assert conn.read_bytes("exports/a.csv") == b"email\nb@example.com\n"
    finally:
        del os.environ[KEY_ID_ENV], os.environ[SECRET_ENV]
    # checked when registered, as the scan's enumeration would list it: a clear 400 with the field, never
    # the secret; a key the server refuses, a bucket that is not there
    for body, field, says in ((s3_body(world, source="file", path="refused.json"), "credentials",
                               "SignatureDoesNotMatch"),
                              ({**s3_body(world), "config": {**s3_body(world)["config"], "bucket": "no-such-bucket-x"}},
                               "bucket", "NoSuchBucket")):
        refused = answer(world, world["a"].admin.post("/api/v1/connectors", json=body), 400)
        assert refused["details"][0]["path"] == ["config", field] and says in refused["details"][0]["message"]
    # one whose keys stop working after it was registered: the scan's read says so, with the reason
    stored = answer(world, world["a"].admin.post("/api/v1/connectors", json=BODIES["s3-file"](world)), 201)["data"]
    settings = Settings(secrets_dir=Path(world["system"].env["SCANLEDGER_SECRETS_DIR"]),
                        s3_endpoints=(origin(world["s3"].url),))
    rotated = {**stored["config"], "credentials": {"source": "file", "path": "refused.json"}}
    with pytest.raises(ConnectorError) as exc:
        list(connector_for(settings, world["a"].id, "s3", rotated).list_resources())
    assert exc.value.reason == "credentials" and FILE_SECRET not in str(exc.value)
