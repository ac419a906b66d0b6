"""A real S3 server for tests and benchmarks: moto's standalone server, in a process of its own, on a free port.

Clients talk to it over HTTP with boto3 exactly as to any S3-compatible endpoint; nothing in
the code under test is mocked. With `auth=True` the server checks credentials as AWS would
(moto's IAM enforcement): `start()` then makes one IAM user allowed everything and keeps its
keys in `keys`, and any other key is refused (InvalidAccessKeyId).

moto keeps its objects in memory. With `durable=True` the server writes every request it gets to
a file (moto's recorder) and a start on the same port first replays that file into the new
process, on a port of its own, before it opens the server's port: `stop()` then `start()` is an S3
server going down and coming back with its data, as a real one does. While it is down (and
replaying) its port refuses connections; it never answers that an object it held is missing.
(Not with `auth`: the replayed IAM user would get new keys.)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

from harness.system import ROOT, free_port

REGION = "us-east-1"
ADMIN_POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
# Requests moto serves before it starts checking credentials: the three that make the IAM user.
UNCHECKED_REQUESTS = 3


class S3Server:
    def __init__(self, log_dir: Path, auth: bool = False, durable: bool = False):
        if auth and durable:
            raise ValueError("a durable server replays its requests: IAM keys would not survive a restart")
        self.log_dir, self.auth, self.durable = Path(log_dir), auth, durable
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120) -> S3Server:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        env.pop("AWS_ENDPOINT_URL", None)
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(UNCHECKED_REQUESTS)
        if self.durable:
            env["MOTO_ENABLE_RECORDING"], env["MOTO_RECORDER_FILEPATH"] = "true", str(self.recording)
        log = open(self.log_dir / f"moto-{self.port}.log", "ab")  # noqa: SIM115 (the child's stdout for its life)
        server = ["harness.s3", "--durable"] if self.durable else ["moto.server", "-H", "127.0.0.1"]
        self.process = subprocess.Popen([sys.executable, "-m", *server, "-p", str(self.port)], env=env, cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.logs()}")
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server not answering after {timeout_s}s: {self.logs()}") from None
                time.sleep(0.2)
        if self.auth:
            iam = boto3.client("iam", endpoint_url=self.url, region_name=REGION, aws_access_key_id="bootstrap",
                               aws_secret_access_key="bootstrap")
            iam.create_user(UserName="scanner")
            iam.put_user_policy(UserName="scanner", PolicyName="all", PolicyDocument=ADMIN_POLICY)
            key = iam.create_access_key(UserName="scanner")["AccessKey"]
            self.keys = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        return self

    @property
    def recording(self) -> Path:
        return self.log_dir / f"moto-{self.port}-requests.jsonl"

    def client(self, **keys: str):
        """A boto3 S3 client of this server (its own keys unless others are given)."""
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name=REGION, config=Config(s3={"addressing_style": "path"}),
            **(keys or self.keys))

    def bucket(self, name: str, objects: dict[str, bytes] | None = None) -> str:
        """A bucket with these objects (key → bytes)."""
        client = self.client()
        client.create_bucket(Bucket=name)
        for key, data in (objects or {}).items():
            client.put_object(Bucket=name, Key=key, Body=data)
        return name

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def logs(self) -> str:
        path = self.log_dir / f"moto-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def serve_durably(port: int) -> None:
    """A durable server's process (MOTO_ENABLE_RECORDING and MOTO_RECORDER_FILEPATH set): the requests
    its recording holds are replayed into this process's memory on a private port, then moto serves
    `port`, recording what comes next."""
    from moto.moto_api import recorder
    from moto.moto_api._internal.recorder.models import Recorder
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.server import main as moto_server

    # moto's server answers each request on a thread of its own, and its recorder appends a request as two
    # writes (the JSON, then a newline) to a buffered file: two PUTs at once (a planner writing its units'
    # files in parallel) interleaved into a line no replay can read, and the server never came back. One
    # request recorded at a time.
    lock, record = threading.Lock(), Recorder._record_request

    def record_one_at_a_time(self, request, body=None):
        with lock:
            record(self, request, body)
    Recorder._record_request = record_one_at_a_time

    recording = Path(os.environ["MOTO_RECORDER_FILEPATH"])
    if recording.exists() and recording.stat().st_size:
        private = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
        private.start()
        host, private_port = private.get_host_and_port()
        recorder.replay_recording(target_host=f"http://{host}:{private_port}")  # records nothing meanwhile
        private.stop()
    moto_server(["-H", "127.0.0.1", "-p", str(port)])


if __name__ == "__main__":
    args = argparse.ArgumentParser(description="moto's S3 server that comes back with its data")
    args.add_argument("--durable", action="store_true", required=True)
    args.add_argument("-p", "--port", type=int, required=True)
    serve_durably(args.parse_args().port)
