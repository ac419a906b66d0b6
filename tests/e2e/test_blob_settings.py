"""A bad blob store setting at start (issue 24): `scanledger api`, `worker` and `up`, started as the
README says from a working directory of their own, exit 2 with one line naming the setting to fix:
no bucket, refused keys, no keys, an endpoint nobody answers at, a URL that is no S3 URL. Never a
traceback, never "is up", nothing started. The S3 server is the real one that checks credentials."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from harness.system import ROOT, free_port

COMMANDS = ["api", "worker", "up"]


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    return s3_server.bucket(f"blobs-{uuid.uuid4().hex[:8]}")


def cases(s3_server, bucket) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (environment, what the one line must name)."""
    keys = {"AWS_ACCESS_KEY_ID": s3_server.keys["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": s3_server.keys["aws_secret_access_key"]}
    good = {"SCANLEDGER_BLOB_URL": f"s3://{bucket}/ledger", "AWS_ENDPOINT_URL": s3_server.url, **keys}
    return {
        "no bucket": ({**good, "SCANLEDGER_BLOB_URL": "s3://no-such-blobs/ledger"}, "SCANLEDGER_BLOB_URL"),
        "refused keys": ({**good, "AWS_ACCESS_KEY_ID": "AKIAREFUSEDREFUSED00"}, "AWS_ACCESS_KEY_ID"),
        "refused secret": ({**good, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "AWS_SECRET_ACCESS_KEY"),
        "no keys": ({k: v for k, v in good.items() if k not in keys}, "AWS_ACCESS_KEY_ID"),
        "no endpoint": ({**good, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}, "AWS_ENDPOINT_URL"),
        "no S3 URL": ({**good, "SCANLEDGER_BLOB_URL": "https://blobs.example.com/ledger"}, "SCANLEDGER_BLOB_URL"),
    }


CASES = ["no bucket", "refused keys", "refused secret", "no keys", "no endpoint", "no S3 URL"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_blob_setting_is_one_line_naming_it_and_exit_2(kafka, s3_server, bucket, tmp_path, command, case):
    env, named = cases(s3_server, bucket)[case]
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    data_dir = tmp_path / "data"
    env = {**base, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
           "KAFKA_BOOTSTRAP_SERVERS": kafka, "SCANLEDGER_DATA_DIR": str(data_dir),
           "SCANLEDGER_TOPIC_PREFIX": f"test-{uuid.uuid4().hex[:8]}", "SCANLEDGER_PORT": str(free_port()),
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",  # no instance role to look for
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), **env}
    done = subprocess.run([sys.executable, "-m", "cli.main", command], env=env, cwd=cwd, capture_output=True,
                          text=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1, lines
    [line] = lines
    assert line.startswith("scanledger: ") and named in line and "Traceback" not in line, line
    assert not data_dir.exists()  # nothing started, not even the data dir (up's admin token)
