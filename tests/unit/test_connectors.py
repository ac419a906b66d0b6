"""The connector abstraction (services/adapters/connectors/, s3.py) on real sources: temp dirs,
SQLite files and a real S3 server (moto's, over HTTP; `s3_server` checks credentials). No client is mocked."""
from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.system import free_port
from services.adapters.connectors import (
    ConnectorError,
    LocalDirConnector,
    ResourceError,
    SqliteConnector,
    connector_for,
    datastores,
    selected,
    validate_config,
)
from services.adapters.connectors.s3 import S3Connector
from services.settings import Settings, origin

OBJECTS = {"data/a.csv": b"email\na@example.com\n", "data/sub/b.json": b'[{"k": 1}]', "data/c.txt": b"hello",
           "data/d.csv.gz": b"\x1f\x8b\x08\x00", "data/folder/": b"", "other/x.csv": b"x\n1\n",
           **{f"data/many/{i:03}.csv": b"n\n%d\n" % i for i in range(7)}}


@pytest.fixture
def settings(tmp_path) -> Settings:
    (tmp_path / "root").mkdir()
    (tmp_path / "secrets").mkdir()
    return Settings(data_dir=tmp_path / "data", datastore_root=tmp_path / "root", secrets_dir=tmp_path / "secrets",
                    cache_dir=tmp_path / "cache", s3_connect_timeout_s=1, s3_read_timeout_s=5, s3_max_attempts=1)


@pytest.fixture
def lake(settings) -> Path:
    lake = settings.datastore_root / "lake"
    (lake / "sub").mkdir(parents=True)
    (lake / "a.csv").write_text("x,y\n1,2\n")
    (lake / "sub" / "b.jsonl").write_text('{"k": 1}\n')
    (lake / "notes.txt").write_text("Call 555-0100")
    return lake


@pytest.fixture
def bucket(s3_server) -> str:
    return s3_server.bucket(f"lake-{uuid.uuid4().hex[:8]}", OBJECTS)


def s3(s3_server, bucket, prefix="data/", **kw) -> S3Connector:
    return S3Connector(bucket, prefix, s3_server.url, keys=kw.pop("keys", s3_server.keys), connect_timeout_s=2,
                       max_attempts=1, **kw)


# --- local_dir and sqlite ---

def test_a_directory_lists_every_file_with_size_and_mtime(lake, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.csv").write_text("s\n1\n")
    (lake / "escape.csv").symlink_to(outside / "secret.csv")  # a link out of the directory is not its file
    found = list(LocalDirConnector(lake).list_resources())
    assert [r.name for r in found] == ["a.csv", "notes.txt", "sub/b.jsonl"]
    assert found[0].size == 8 and found[0].mtime.endswith("Z") and found[0].kind == "file"
    assert found[0].version == f"8:{found[0].mtime}"
    assert [r.name for r in LocalDirConnector(lake).list_resources(prefixes=["sub/"])] == ["sub/b.jsonl"]
    assert [r.name for r in LocalDirConnector(lake).list_resources(extensions=["txt", ".CSV"])] == ["a.csv",
                                                                                                   "notes.txt"]


def test_a_listing_is_ordered_by_path_and_does_not_follow_linked_directories(tmp_path, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "far.csv").write_text("x\n")
    for name in ("a.txt", "a/c/d.txt", "a/b.txt", "a-b.txt", "z.csv", "a/inner.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    (tmp_path / "a" / "linked").symlink_to(outside)  # a directory elsewhere: never walked into
    (tmp_path / "a" / "alias.txt").symlink_to(tmp_path / "z.csv")  # a link to a file inside: its target's
    assert [r.name for r in LocalDirConnector(tmp_path).list_resources()] == [
        "a/alias.txt", "a/b.txt", "a/c/d.txt", "a/inner.csv", "a-b.txt", "a.txt", "z.csv"]


def test_a_directory_reads_bytes_streams_and_tables(lake):
    conn = LocalDirConnector(lake)
    assert conn.read_bytes("notes.txt") == b"Call 555-0100"
    with conn.open("a.csv") as stream:
        assert stream.read(2) == b"x,"
    assert conn.read_table("sub/b.jsonl", 10).column_names == ["k"]
    with pytest.raises(ResourceError, match="larger than 4 bytes") as exc:
        conn.read_bytes("notes.txt", max_bytes=4)
    assert exc.value.reason == "too_large"
    for name in ("gone.csv", "../lake/../../x", "sub"):
        with pytest.raises(ResourceError, match="not found") as exc:
            conn.open(name)
        assert exc.value.reason == "missing"


def test_a_directory_that_is_gone_cannot_be_listed(tmp_path):
    with pytest.raises(ConnectorError, match="is gone") as exc:
        list(LocalDirConnector(tmp_path / "nowhere").list_resources())
    assert exc.value.reason == "missing" and exc.value.status == 409


def test_a_database_lists_tables_and_reads_them_as_csv(settings):
    path = settings.datastore_root / "shop.db"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE people (id INTEGER, email TEXT); INSERT INTO people VALUES (1, 'a@b.co');"
                         "CREATE TABLE \"odd \"\"name\" (z TEXT); CREATE VIEW v AS SELECT * FROM people;")
    conn = SqliteConnector(path)
    found = list(conn.list_resources())
    assert [(r.name, r.kind, r.size) for r in found] == [('odd "name', "table", None), ("people", "table", None)]
    assert found[0].mtime.endswith("Z")
    assert [r.name for r in conn.list_resources(prefixes=["peo"], extensions=["csv"])] == ["people"]
    assert conn.read_bytes("people") == b"id,email\n1,a@b.co\n"
    assert conn.read_table("people", 10).to_pydict() == {"id": [1], "email": ["a@b.co"]}
    with pytest.raises(ResourceError, match="not found"):
        conn.read_bytes("missing")
    with pytest.raises(ConnectorError, match="cannot read SQLite database"):
        list(SqliteConnector(settings.datastore_root / "nothing.db").list_resources())


def test_seed_000_datastores_are_read_by_the_same_connectors(lake):
    assert datastores.list_containers("local_dir", lake) == [("a.csv", "file"), ("sub/b.jsonl", "file")]
    assert datastores.DatastoreError is ConnectorError and datastores.AssetReadError is ResourceError
    assert datastores.read_asset("local_dir", lake, "a.csv", 10) == LocalDirConnector(lake).read_table("a.csv", 10)


def test_filters():
    assert selected("data/x.CSV", ["data/"], ["csv"]) and not selected("x.csv", ["data/"], None)
    assert selected("x.csv.gz", (), ["gz"]) and selected("x.csv.gz", (), ["csv.gz"]) and not selected("x.csv.gz",
                                                                                                         (), ["csv"])


# --- the registry: validated, confined configs ---

def test_local_configs_are_confined_as_seed_000_datastores(settings, lake):
    stored = validate_config(settings, "w", "local_dir", {"path": "lake"})
    assert stored == {"path": "lake", "resolved_path": str(lake.resolve())}
    assert isinstance(connector_for(settings, "w", "local_dir", stored), LocalDirConnector)
    (settings.datastore_root / "out").symlink_to(settings.data_dir.parent)
    for path in ("..", "/etc", "out", "lake/../.."):
        with pytest.raises(ConnectorError, match="outside the datastore root"):
            validate_config(settings, "w", "local_dir", {"path": path})
    with pytest.raises(ConnectorError, match="not a file"):
        validate_config(settings, "w", "sqlite", {"path": "lake"})
    with pytest.raises(ConnectorError, match="not a SQLite database"):  # a CSV named .db: refused now, not at scan time
        (settings.datastore_root / "export.db").write_text("id,email\n1,a@example.com\n")
        validate_config(settings, "w", "sqlite", {"path": "export.db"})
    with pytest.raises(ValidationError):
        validate_config(settings, "w", "local_dir", {"path": "lake", "extra": 1})
    # the secrets dir is the system's own: never a source, even inside the root
    inside = Settings(**{**settings.__dict__, "secrets_dir": lake / "sub"})
    with pytest.raises(ConnectorError, match="system's own data"):
        validate_config(inside, "w", "local_dir", {"path": "lake"})


def test_a_relative_path_is_read_under_the_root_whatever_the_working_directory(settings, lake, tmp_path,
                                                                                 monkeypatch):
    # a BYOC worker gets the path as registered, never the server's resolved one (issue 18)
    monkeypatch.chdir(tmp_path)  # not the root: "lake" here is nothing
    conn = connector_for(settings, "w", "local_dir", {"path": "lake"})
    assert conn.path == lake.resolve() and conn.read_bytes("a.csv") == b"x,y\n1,2\n"
    conn.probe()
    with pytest.raises(ConnectorError, match="outside its workspace's datastore root"):
        connector_for(settings, "w", "local_dir", {"path": "../lake"})
    elsewhere = Settings(**{**settings.__dict__, "datastore_root": tmp_path / "empty"})
    with pytest.raises(ConnectorError, match="does not exist") as exc:  # a root that does not hold the path
        connector_for(elsewhere, "w", "local_dir", {"path": "lake"}).probe()
    assert exc.value.reason == "missing"
    with pytest.raises(ConnectorError, match="does not exist"):
        connector_for(elsewhere, "w", "sqlite", {"path": "lake/x.db"}).probe()


def test_a_link_moved_after_registration_is_refused_when_opened(settings, lake, tmp_path_factory):
    (settings.datastore_root / "moving").symlink_to(lake)
    stored = validate_config(settings, "w", "local_dir", {"path": "moving"})
    assert stored["resolved_path"] == str(lake.resolve())
    lake.rename(lake.with_name("elsewhere"))
    lake.symlink_to(tmp_path_factory.mktemp("outside"))
    with pytest.raises(ConnectorError, match="outside its workspace's datastore root") as exc:
        connector_for(settings, "w", "local_dir", stored)
    assert exc.value.status == 409


def test_per_workspace_roots_and_secret_names(settings):
    per = Settings(**{**settings.__dict__, "datastore_root_per_workspace": True})
    (per.datastore_root / "ws-a" / "lake").mkdir(parents=True)
    (per.datastore_root / "ws-b").mkdir()
    assert validate_config(per, "ws-a", "local_dir", {"path": "lake"})
    with pytest.raises(ConnectorError):
        validate_config(per, "ws-b", "local_dir", {"path": "../ws-a/lake"})
    (per.datastore_root / "ws").mkdir()
    os.environ["SCANLEDGER_SECRET_WS_A__KEY"] = "k"
    os.environ["SCANLEDGER_SECRET_SHARED_KEY"] = "k"
    try:
        creds = {"source": "env", "access_key_id_env": "SCANLEDGER_SECRET_WS_A__KEY",
                 "secret_access_key_env": "SCANLEDGER_SECRET_WS_A__KEY"}
        config = {"bucket": "lake", "credentials": creds}
        assert validate_config(per, "ws-a", "s3", config)["credentials"] == creds
        for other in ("ws-b", "ws"):  # "ws" is a prefix of "ws-a": its variables are still not ws's
            with pytest.raises(ConnectorError, match="not one a connector may name"):
                validate_config(per, other, "s3", config)
        shared = {**config, "credentials": {**creds, "access_key_id_env": "SCANLEDGER_SECRET_SHARED_KEY"}}
        with pytest.raises(ConnectorError, match="not one a connector may name"):
            validate_config(per, "ws-a", "s3", shared)
        assert validate_config(settings, "ws-b", "s3", shared)
    finally:
        del os.environ["SCANLEDGER_SECRET_WS_A__KEY"], os.environ["SCANLEDGER_SECRET_SHARED_KEY"]


def test_s3_credentials_are_references_that_must_resolve(settings, tmp_path):
    def config(**creds):
        return {"bucket": "lake", "region": "eu-west-1", "credentials": creds}

    for creds, message in (
            ({"source": "env", "access_key_id_env": "SCANLEDGER_ADMIN_TOKEN", "secret_access_key_env": "HOME"},
             "not one a connector may name"),
            ({"source": "env", "access_key_id_env": "SCANLEDGER_SECRET_NOT_SET_EVER",
              "secret_access_key_env": "SCANLEDGER_SECRET_NOT_SET_EVER"}, "is not set"),
            ({"source": "file", "path": "missing.json"}, "not a file in the secrets dir"),
            ({"source": "file", "path": "../data/x.json"}, "not a file in the secrets dir")):
        with pytest.raises(ConnectorError, match=message) as exc:
            validate_config(settings, "w", "s3", config(**creds))
        assert exc.value.reason == "credentials" and exc.value.status == 400
    (settings.secrets_dir / "bad.json").write_text("not json TOPSECRET")
    with pytest.raises(ConnectorError, match="cannot be read as JSON") as exc:
        validate_config(settings, "w", "s3", config(source="file", path="bad.json"))
    assert "TOPSECRET" not in str(exc.value)
    (tmp_path / "outside.json").write_text('{"access_key_id": "a", "secret_access_key": "b"}')
    (settings.secrets_dir / "link.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(ConnectorError, match="not a file in the secrets dir"):
        validate_config(settings, "w", "s3", config(source="file", path="link.json"))
    no_dir = Settings(**{**settings.__dict__, "secrets_dir": None})
    with pytest.raises(ConnectorError, match="SCANLEDGER_SECRETS_DIR is not set"):
        validate_config(no_dir, "w", "s3", config(source="file", path="x.json"))
    for bad in ({"bucket": "UPPER", "credentials": {"source": "anonymous"}}, {"bucket": "lake"},
                {"bucket": "lake", "credentials": {"source": "anonymous"}, "secret_access_key": "x"},
                {"bucket": "lake", "credentials": {"source": "env", "access_key_id_env": "A B",
                                                   "secret_access_key_env": "X"}},
                {"bucket": "lake", "endpoint_url": "ftp://x", "credentials": {"source": "anonymous"}}):
        with pytest.raises(ValidationError):
            validate_config(settings, "w", "s3", bad)
    stored = validate_config(settings, "w", "s3", config(source="anonymous"))
    assert stored == {"bucket": "lake", "prefix": "", "region": "eu-west-1", "credentials": {"source": "anonymous"}}


# --- s3, on the real server ---

def test_s3_lists_every_page_under_its_prefix(s3_server, bucket):
    conn = s3(s3_server, bucket, page_size=2)  # 11 objects under data/: six pages
    found = list(conn.list_resources())
    names = [r.name for r in found]
    assert names == sorted(k for k in OBJECTS if k.startswith("data/") and not k.endswith("/"))
    a = found[names.index("data/a.csv")]
    assert a.size == len(OBJECTS["data/a.csv"]) and a.etag and a.mtime.endswith("Z") and a.version == a.etag
    assert [r.name for r in conn.list_resources(prefixes=["data/sub/", "other/"])] == ["data/sub/b.json"]
    assert [r.name for r in conn.list_resources(prefixes=["data/many/00", "data/many/"])] == [
        f"data/many/{i:03}.csv" for i in range(7)]
    assert [r.name for r in conn.list_resources(prefixes=[""], extensions=["txt", "gz"])] == ["data/c.txt",
                                                                                           "data/d.csv.gz"]
    assert len(list(s3(s3_server, bucket, prefix="").list_resources())) == len(OBJECTS) - 1


def test_s3_reads_stream_the_object(s3_server, bucket):
    conn = s3(s3_server, bucket)
    assert conn.read_bytes("data/a.csv") == OBJECTS["data/a.csv"]
    with conn.open("data/sub/b.json") as body:
        assert b"".join(body.iter_chunks(3)) == OBJECTS["data/sub/b.json"]
    assert conn.read_table("data/a.csv", 10).to_pydict() == {"email": ["a@example.com"]}
    with pytest.raises(ResourceError, match="larger than 3 bytes"):
        conn.read_bytes("data/c.txt", max_bytes=3)
    for key in ("data/none.csv", "other/x.csv", "data/folder/"):  # missing, outside the prefix, a folder marker
        with pytest.raises(ResourceError, match="not found") as exc:
            conn.open(key)
        assert exc.value.reason == "missing"


def test_s3_failures_are_clear_errors_with_a_reason(s3_server, bucket):
    wrong = s3(s3_server, bucket, keys={**s3_server.keys, "aws_secret_access_key": "wrong-secret-value"})
    with pytest.raises(ConnectorError, match="SignatureDoesNotMatch") as exc:
        list(wrong.list_resources())
    assert exc.value.reason == "credentials" and exc.value.status == 409 and "wrong-secret-value" not in str(exc.value)
    unknown = s3(s3_server, bucket, keys={"aws_access_key_id": "AKIANOBODY", "aws_secret_access_key": "x"})
    with pytest.raises(ConnectorError, match="InvalidAccessKeyId") as exc:
        list(unknown.list_resources())
    assert exc.value.reason == "credentials"
    with pytest.raises(ResourceError) as exc:
        wrong.read_bytes("data/a.csv")
    assert exc.value.reason == "permission"
    with pytest.raises(ConnectorError, match="NoSuchBucket") as exc:
        list(s3(s3_server, "no-such-bucket-here").list_resources())
    assert exc.value.reason == "missing"
    down = S3Connector(bucket, "", f"http://127.0.0.1:{free_port()}", keys=s3_server.keys, connect_timeout_s=1,
                       max_attempts=1)
    with pytest.raises(ConnectorError, match="cannot list s3://") as exc:
        list(down.list_resources())
    assert exc.value.reason == "unavailable"
    with pytest.raises(ResourceError) as exc:
        down.read_bytes("data/a.csv")
    assert exc.value.reason == "unavailable"


def test_s3_probe_tells_a_source_out_of_reach_from_one_object_out_of_reach(s3_server, bucket):
    s3(s3_server, bucket).probe("data/a.csv")
    s3(s3_server, bucket).probe("data/none.csv")  # one missing object: its read says so, the source is fine
    s3(s3_server, bucket).probe()
    s3(s3_server, bucket).probe("data/folder/")  # an empty object (a ranged GET of nothing)
    wrong = s3(s3_server, bucket, keys={**s3_server.keys, "aws_secret_access_key": "wrong-secret-value"})
    down = S3Connector(bucket, "", f"http://127.0.0.1:{free_port()}", keys=s3_server.keys, connect_timeout_s=1,
                       max_attempts=1)
    for conn, sample, reason in ((wrong, "data/a.csv", "credentials"), (wrong, None, "credentials"),
                                 (s3(s3_server, "no-such-bucket-here"), "data/a.csv", "missing"),
                                 (down, "data/a.csv", "unavailable")):
        with pytest.raises(ConnectorError) as exc:
            conn.probe(sample)
        assert exc.value.reason == reason and "wrong-secret-value" not in str(exc.value)


def test_s3_through_the_registry_with_referenced_keys(settings, s3_server, bucket):
    config = {"bucket": bucket, "endpoint_url": s3_server.url, "credentials": {"source": "anonymous"}}
    with pytest.raises(ConnectorError, match="not an allowed S3 endpoint"):  # until the operator allows it
        validate_config(settings, "w", "s3", config)
    with pytest.raises(ConnectorError, match="not an allowed S3 endpoint"):  # and for one stored before
        connector_for(settings, "w", "s3", config)
    settings = Settings(**{**settings.__dict__, "s3_endpoints": (origin(s3_server.url),)})
    (settings.secrets_dir / "team").mkdir()
    (settings.secrets_dir / "team" / "s3.json").write_text(json.dumps(
        {"access_key_id": s3_server.keys["aws_access_key_id"], "secret_access_key": s3_server.keys[
            "aws_secret_access_key"]}))
    stored = validate_config(settings, "w", "s3", {"bucket": bucket, "prefix": "data/sub/",
                                                   "endpoint_url": s3_server.url,
                                                   "credentials": {"source": "file", "path": "team/s3.json"}})
    assert s3_server.keys["aws_secret_access_key"] not in json.dumps(stored)
    conn = connector_for(settings, "w", "s3", stored)
    assert [r.name for r in conn.list_resources()] == ["data/sub/b.json"]
    os.environ["SCANLEDGER_SECRET_UNIT_ID"] = s3_server.keys["aws_access_key_id"]
    os.environ["SCANLEDGER_SECRET_UNIT_KEY"] = s3_server.keys["aws_secret_access_key"]
    try:
        stored = validate_config(settings, "w", "s3", {
            "bucket": bucket, "endpoint_url": s3_server.url, "credentials": {
                "source": "env", "access_key_id_env": "SCANLEDGER_SECRET_UNIT_ID",
                "secret_access_key_env": "SCANLEDGER_SECRET_UNIT_KEY"}})
        assert connector_for(settings, "w", "s3", stored).read_bytes("other/x.csv") == OBJECTS["other/x.csv"]
    finally:
        del os.environ["SCANLEDGER_SECRET_UNIT_ID"], os.environ["SCANLEDGER_SECRET_UNIT_KEY"]
    anonymous = connector_for(settings, "w", "s3", {"bucket": bucket, "endpoint_url": s3_server.url,
                                                    "credentials": {"source": "anonymous"}})
    with pytest.raises(ConnectorError):  # this server checks credentials: unsigned requests are refused
        list(anonymous.list_resources())


def test_a_missing_or_unknown_credentials_source_is_named_in_the_details():
    from api.web.errors import details_from
    from services.adapters.connectors.config import S3Config

    for credentials, message in (({"access_key_id_env": "X"}, "Required"), ({"source": "vault"}, "Expected one of")):
        with pytest.raises(ValidationError) as exc:
            S3Config.model_validate({"bucket": "lake", "credentials": credentials})
        [detail] = details_from(exc.value, ("config",))
        assert detail["path"] == ["config", "credentials", "source"] and detail["message"].startswith(message)
        assert "discriminator" not in detail["message"]
