"""The blob stores (services/adapters/blobstore.py, blobstore_s3.py) on real storage: a temp dir and a
real S3 server (moto's, over HTTP: `s3_server` checks credentials; a durable one of this module's own is
stopped and started again). No client is mocked. Each "host" is a store with a cache dir of its own."""
from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

from harness.s3 import REGION, S3Server
from services.adapters.blobstore import (
    BlobMissing,
    BlobSettingError,
    BlobUnavailable,
    LocalBlobStore,
    blob_store,
    check_blob_store,
)
from services.adapters.blobstore_s3 import S3BlobStore
from services.adapters.readers import to_ipc
from services.domain import contracts as c
from services.domain.envelope import encode, headers, make_event
from services.domain.kinds import COMPLIANCE
from services.runners.compliance import plan_upload
from services.settings import Settings
from streams.evaluator import Evaluator
from streams.record_handling import Record, RecordHandling

READ_ONLY = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
             '"Action": ["s3:GetObject", "s3:HeadObject"], "Resource": "*"}]}')


@pytest.fixture
def bucket(s3_server) -> str:
    return s3_server.bucket(f"blobs-{uuid.uuid4().hex[:8]}")


def host(server: S3Server, bucket: str, cache: Path, prefix: str = "ledger/blobs", keys=None) -> S3BlobStore:
    """One host's store: its own cache dir, the bucket every host shares."""
    return S3BlobStore(f"s3://{bucket}/{prefix}", cache, connect_timeout_s=1, read_timeout_s=5, max_attempts=1,
                       endpoint_url=server.url, keys=keys or server.keys)


def objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def read_only_keys(server: S3Server) -> dict[str, str]:
    """Keys of an IAM user that may read objects and not write them."""
    iam = boto3.client("iam", endpoint_url=server.url, region_name=REGION, **server.keys)
    name = f"reader-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=READ_ONLY)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    server = request.getfixturevalue("s3_server")
    return host(server, request.getfixturevalue("bucket"), tmp_path / "cache")


def test_both_stores_give_back_the_bytes_under_their_sha256_by_value_and_as_a_local_file(store):
    data = b"Txn ID,Amount\nT1,9500\n" * 1000
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.get(key) == data
    assert store.path(key).is_file() and store.path(key).read_bytes() == data
    assert store.put(data) == key  # again: the same key, nothing else
    store.check()


def test_a_key_no_blob_has_or_no_store_makes_is_blob_missing(store):
    for key in ("0" * 64, "../../etc/passwd", "A" * 64, ""):
        with pytest.raises(BlobMissing):
            store.get(key)
        with pytest.raises(BlobMissing):
            store.path(key)


def test_s3_keeps_one_object_per_content_under_the_url_prefix(s3_server, bucket, tmp_path):
    first, second = host(s3_server, bucket, tmp_path / "a"), host(s3_server, bucket, tmp_path / "b")
    keys = {first.put(b"one"), first.put(b"two"), second.put(b"one"), first.put(b"one")}
    assert objects(s3_server, bucket) == {f"ledger/blobs/{hashlib.sha256(d).hexdigest()}": d for d in (b"one", b"two")}
    assert len(keys) == 2
    bare = S3BlobStore(f"s3://{bucket}", tmp_path / "c", endpoint_url=s3_server.url, keys=s3_server.keys)
    assert bare.put(b"three") in objects(s3_server, bucket)  # no prefix: the bucket's top level


def test_a_put_of_bytes_the_bucket_holds_already_writes_nothing(s3_server, bucket, tmp_path):
    """A host whose keys may not write puts what another host wrote: no PUT is sent (it would be refused)."""
    writer = host(s3_server, bucket, tmp_path / "writer")
    key = writer.put(b"the same bytes")
    reader = host(s3_server, bucket, tmp_path / "reader", keys=read_only_keys(s3_server))
    assert reader.put(b"the same bytes") == key
    assert reader.get(key) == b"the same bytes"
    with pytest.raises(BlobUnavailable, match="AccessDenied"):  # new bytes do need the PUT
        reader.put(b"other bytes")


def test_reads_go_through_the_hosts_cache_which_is_never_stale(s3_server, bucket, tmp_path):
    data = pa.table({"amount": ["1", "2", "3"]})
    key = host(s3_server, bucket, tmp_path / "a").put(to_ipc(data))
    second = host(s3_server, bucket, tmp_path / "b")
    assert not list((tmp_path / "b").rglob(key))
    assert second.get(key) == to_ipc(data)
    [cached] = list((tmp_path / "b").rglob(key))
    s3_server.client().delete_object(Bucket=bucket, Key=f"ledger/blobs/{key}")  # the bucket no longer has it:
    assert second.get(key) == to_ipc(data) and second.path(key) == cached  # read from the cache, no download
    with pytest.raises(BlobMissing):  # a host that never read it has to ask the bucket
        host(s3_server, bucket, tmp_path / "c").get(key)


def test_an_object_that_is_not_its_keys_content_is_never_cached(s3_server, bucket, tmp_path):
    key = host(s3_server, bucket, tmp_path / "a").put(b"right bytes")
    s3_server.client().put_object(Bucket=bucket, Key=f"ledger/blobs/{key}", Body=b"wrong bytes")
    other = host(s3_server, bucket, tmp_path / "b")
    with pytest.raises(BlobUnavailable, match="other bytes"):
        other.get(key)
    assert not [p for p in (tmp_path / "b").rglob("*") if p.is_file()]  # no half or wrong blob left behind


def test_the_factory_gives_every_process_the_store_its_settings_name(tmp_path):
    assert isinstance(blob_store(Settings(data_dir=tmp_path)), LocalBlobStore)
    assert blob_store(Settings(data_dir=tmp_path)).root == tmp_path / "blobs"
    s3 = blob_store(Settings(data_dir=tmp_path, blob_url="s3://scan-blobs/team/a/"))
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix, s3.cache) == ("scan-blobs", "team/a/", tmp_path / "blob-cache")


@pytest.mark.parametrize("url", ["http://scan-blobs/x", "scan-blobs", "s3://", "s3://user@bucket/x", "file:///tmp/x"])
def test_a_blob_url_that_is_no_s3_url_is_one_line_naming_the_setting(tmp_path, url):
    with pytest.raises(BlobSettingError) as caught:
        check_blob_store(Settings(data_dir=tmp_path, blob_url=url))
    assert str(caught.value).startswith(f'SCANLEDGER_BLOB_URL="{url}" is not an S3 URL')


def test_check_says_in_one_line_which_setting_to_fix(s3_server, bucket, tmp_path):
    def problem(store) -> str:
        with pytest.raises(BlobSettingError) as caught:
            store.check()
        assert "\n" not in str(caught.value)
        return str(caught.value)

    wrong = {"aws_access_key_id": "AKIAWRONGWRONGWRONG1", "aws_secret_access_key": "nope"}
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in problem(host(s3_server, bucket, tmp_path, keys=wrong))
    assert "InvalidAccessKeyId" in problem(host(s3_server, bucket, tmp_path, keys=wrong))
    missing = problem(host(s3_server, "no-such-bucket", tmp_path))
    assert missing.startswith("SCANLEDGER_BLOB_URL=s3://no-such-bucket/") and 'no bucket "no-such-bucket"' in missing
    down = S3BlobStore(f"s3://{bucket}", tmp_path, connect_timeout_s=1, max_attempts=1,
                       endpoint_url="http://127.0.0.1:9", keys=s3_server.keys)
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in problem(down) and "AWS_ENDPOINT_URL" in problem(down)
    reader = host(s3_server, bucket, tmp_path, keys=read_only_keys(s3_server))
    assert "s3:PutObject" in problem(reader)
    host(s3_server, bucket, tmp_path).check()  # right settings: nothing to say


# --- an S3 server that stops and comes back --------------------------------------------------------

@pytest.fixture(scope="module")
def durable(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("durable-s3"), durable=True).start()
    yield server
    server.stop()


def test_a_store_that_does_not_answer_is_unavailable_and_nothing_is_lost(durable, tmp_path):
    bucket = durable.bucket(f"outage-{uuid.uuid4().hex[:8]}")
    key = host(durable, bucket, tmp_path / "a").put(b"kept")
    durable.stop()
    try:
        with pytest.raises(BlobUnavailable, match="cannot read blob"):
            host(durable, bucket, tmp_path / "b").get(key)
        with pytest.raises(BlobUnavailable, match="cannot look up blob"):
            host(durable, bucket, tmp_path / "b").put(b"new")
        assert not [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    finally:
        durable.start()
    assert host(durable, bucket, tmp_path / "b").get(key) == b"kept"


def test_blobs_written_at_once_are_all_there_after_the_store_comes_back(durable, tmp_path):
    """A planner writes its units' files in parallel: the durable test server must record concurrent
    requests whole, or its restart replays a broken recording and never answers again."""
    from concurrent.futures import ThreadPoolExecutor
    bucket = durable.bucket(f"parallel-{uuid.uuid4().hex[:8]}")
    store = host(durable, bucket, tmp_path / "a")
    blobs = [uuid.uuid4().bytes * 2000 for _ in range(48)]
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(store.put, blobs))
    durable.stop()
    durable.start()
    assert [host(durable, bucket, tmp_path / "b").get(key) for key in keys] == blobs


class Published:
    """What a unit attempt writes (a stand-in for the Kafka publisher, which the e2e tests use)."""

    def __init__(self):
        self.events, self.violations = [], 0

    def chained(self, _stream):
        return self

    def publish(self, _topic, event, key=None):
        self.events.append(event)

    def publish_encoded(self, _topic, raws, _type, _key):
        self.violations += len(raws)

    def flush(self, *_):
        pass

    async def flush_async(self, timeout=60):
        pass


class NoAborts:
    def is_aborted(self, _scan_id, _attempt):
        return False


class NoDeadLetters:
    def send_message(self, source, error):
        raise AssertionError(f"dead-lettered: {error}")


def test_a_unit_whose_store_is_down_runs_again_until_it_answers_and_counts_exactly(durable, tmp_path):
    """Host A plans a compliance scan into the bucket; S3 stops; host B's evaluator meets the outage
    (BlobUnavailable, no failed unit) and the record pipeline runs the unit again until S3 is back."""
    bucket = durable.bucket(f"units-{uuid.uuid4().hex[:8]}")
    amounts = [str(a) for a in range(1, 301)]
    table = pa.table({"amt": amounts, "acct": [f"ACC-{i % 7}" for i in range(300)]})
    settings = Settings(data_dir=tmp_path / "b", unit_records=100, work_partitions=4)
    planner = host(durable, bucket, tmp_path / "a")
    rule = {"id": "big", "name": "big", "type": "threshold", "severity": "high", "active": True,
            "params": {"field": "amount", "op": "gt", "value": 250}}
    request = {"scan_id": "s1", "kind": "compliance", "workspace_id": "w", "requested_by": "me",
               "requested_at": "2024-01-01T00:00:00.000Z", "policy": {"id": "p", "name": "P", "rules": [rule]},
               "upload": {"id": "u", "blob": planner.put(to_ipc(table)), "record_count": 300,
                          "columns": ["amt", "acct"]},
               "mapping": {"id": "m", "mapping": {"amount": "amt", "account": "acct"}, "temporal_scale": "daily"}}
    cause = make_event(c.RUN_SCAN, "s1", request, id="cmd-1", source="test", workspace_id="w")
    works = COMPLIANCE.work(cause, request, plan_upload(request, planner, settings).units)
    assert len(works) == 3
    evaluator_host = host(durable, bucket, tmp_path / "b")
    published = Published()
    evaluator = Evaluator(published, evaluator_host, settings, NoAborts())
    records = RecordHandling(NoDeadLetters(), settings.topics.commands, retry_max_s=0.05)
    attempts: list[str] = []

    async def evaluate(message, digest=""):
        attempts.append(message["data"]["unit_id"])
        await evaluator.evaluate(message, digest)

    async def scenario():
        durable.stop()
        try:
            first = asyncio.ensure_future(records.process(Record(encode(works[0]), headers(works[0]),
                                                                 settings.topics.work, None, works[0]), evaluate))
            while len(attempts) < 3:  # the unit met the outage, and met it again
                await asyncio.sleep(0.05)
            assert not first.done() and published.events == []  # nothing written, nothing acked
        finally:
            await asyncio.to_thread(durable.start)
        await first
        for work in works[1:]:
            await records.process(Record(encode(work), headers(work), settings.topics.work, None, work), evaluate)

    asyncio.run(scenario())
    results = [e for e in published.events if e["type"] in (c.UNIT_COMPLETED, c.UNIT_FAILED)]
    assert [e["type"] for e in results] == [c.UNIT_COMPLETED] * 3
    assert published.violations == sum(e["data"]["violations_by_rule"]["big"] for e in results) == 50
    assert sum(e["data"]["record_count"] for e in results) == 300
