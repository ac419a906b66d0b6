"""`scanledger scan-worker`: a BYOC scan's worker, run in the customer's own infrastructure.

Configured by exactly the environment GET /api/v1/scans/:id/deployment-config gives: SCAN_ID,
COORDINATOR_URL (the scan's report URL) and AUTH_TOKEN (its worker token). Credentials for the
data come from the worker's own environment, named by the connector's config (e.g.
SCANLEDGER_SECRET_… variables); a local_dir's path is read under the worker's
SCANLEDGER_DATASTORE_ROOT (default: its working directory).

It claims a chunk, checks that it can reach the chunk's data at all (the directory under its
root, the bucket with its keys, the endpoint): if not, that is its own configuration, not the
data's, so it scans nothing, releases the chunk for a worker that can, logs one line naming the
setting to fix and exits 2. Otherwise it scans the chunk with the same code as the in-cluster evaluators
(services.runners.sensitive.run_chunk), and reports what it found through `Reporter`, which
stands where the evaluator's Kafka publisher stands: events are sent in batches, every send is
also a heartbeat that keeps the lease, and a heartbeat thread keeps it while a large file is
scanned. It claims again until no chunk is left; it exits when its scan has ended or was
cancelled (the token answers 401) — within about a heartbeat of a cancel.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import replace

import httpx

from services.adapters.connectors import ConnectorError, connector_for
from services.runners.sensitive import run_chunk
from services.settings import Settings, origin

log = logging.getLogger("scanledger.scan_worker")

BATCH = 500  # events per report, at most
REPORT_EVERY_S = 0.5  # and at least this often while there are some: progress shows as it happens
RETRY_FOR_S = 120.0  # how long a report is retried while the API or the ledger is away (503, no answer)


class ScanEnded(Exception):
    """401: the scan ended or was cancelled (or the token is not valid): stop."""


class LeaseLost(Exception):
    """409: another worker holds the chunk now (this one was silent past its lease)."""


class Misconfigured(Exception):
    """This worker cannot reach a chunk's data: its message names the setting to fix."""


EXIT_MISCONFIGURED = 2


class Api:
    """The report URL with the worker token: one POST, retried while the API or the ledger is away."""

    def __init__(self, url: str, token: str, timeout_s: float = 30.0):
        self.url = url
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)
        self.lock = threading.Lock()  # the heartbeat thread and the scan share the client

    def post(self, body: dict) -> dict:
        deadline = time.monotonic() + RETRY_FOR_S
        delay = 0.5
        while True:
            try:
                with self.lock:
                    r = self.client.post(self.url, json=body)
            except httpx.TransportError as exc:
                r, why = None, str(exc)
            if r is not None:
                if r.status_code == 200:
                    return r.json()["data"]
                if r.status_code == 401:
                    raise ScanEnded(r.json().get("message", "401"))
                if r.status_code == 409:
                    raise LeaseLost(r.json().get("message", "409"))
                if r.status_code not in (429, 502, 503, 504):
                    raise RuntimeError(f"the API refused a report ({r.status_code}): {r.text[:500]}")
                why = f"{r.status_code} {r.text[:200]}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not take a report for {RETRY_FOR_S:.0f}s: {why}")
            log.warning("report not taken (%s); retrying in %.1fs", why, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def close(self) -> None:
        self.client.close()


class Reporter:
    """run_chunk's publisher: its events go to the API in batches (the topic is the API's to choose)."""

    def __init__(self, api: Api, chunk_id: str, lease_id: str):
        self.api, self.chunk_id, self.lease_id = api, chunk_id, lease_id
        self.buffer: list[dict] = []
        self.sent = time.monotonic()

    def publish(self, _topic: str, event: dict, key: str | None = None) -> None:
        self.buffer.append({"type": event["type"], "data": event["data"]})
        if len(self.buffer) >= BATCH or time.monotonic() - self.sent >= REPORT_EVERY_S:
            self.flush()

    def flush(self, timeout: float = 60) -> None:
        if self.buffer:
            self.api.post({"type": "events", "chunk_id": self.chunk_id, "lease_id": self.lease_id,
                           "events": self.buffer})
            self.buffer = []
        self.sent = time.monotonic()

    def heartbeat(self) -> None:
        self.api.post({"type": "heartbeat", "chunk_id": self.chunk_id, "lease_id": self.lease_id})

    def release(self, reason: str) -> None:
        """Give the chunk back at once (it was not scanned), for a worker that can reach its data."""
        try:
            self.api.post({"type": "release", "chunk_id": self.chunk_id, "lease_id": self.lease_id,
                           "reason": reason[:1000]})
        except (ScanEnded, LeaseLost, RuntimeError) as exc:  # the lease will lapse anyway
            log.info("chunk %s not released (%s): its lease lapses", self.chunk_id, exc)


class Heartbeat:
    """Keeps a chunk's lease while it is scanned; notices a cancel (401) or a lost lease (409)."""

    def __init__(self, reporter: Reporter, every_s: float):
        self.reporter, self.every_s = reporter, every_s
        self.stopped = threading.Event()
        self.reason: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def _run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                self.reporter.heartbeat()
            except (ScanEnded, LeaseLost) as exc:
                self.reason = exc
                return
            except Exception as exc:  # the API is away longer than a retry: the lease may pass on, which is safe
                log.warning("heartbeat failed: %s", exc)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stopped.set()
        self.thread.join(5)


def worker_settings(work: dict) -> Settings:
    """The worker's settings: its own environment, and the S3 endpoints the API named for this chunk
    (the API checked them against its allowlist) unless the worker's operator listed their own."""
    settings = Settings.from_env()
    if settings.s3_endpoints:
        return settings
    endpoints = {origin(s["config"]["endpoint_url"]) for s in work.get("connectors") or []
                 if s["type"] == "s3" and s["config"].get("endpoint_url")}
    return replace(settings, s3_endpoints=tuple(sorted(endpoints)))


def run(scan_id: str, url: str, token: str, worker_id: str | None = None) -> int:
    """Claim and scan chunks until none is left or the scan ends; the exit status."""
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    api = Api(url, token)
    log.info("worker %s on scan %s (%s)", worker_id, scan_id, url)
    try:
        while True:
            try:
                got = api.post({"type": "claim", "worker_id": worker_id})
            except ScanEnded as exc:
                log.info("scan %s is over (%s): exiting", scan_id, exc)
                return 0
            chunk = got["chunk"]
            if chunk is None:
                if got["open_chunks"] == 0:
                    log.info("no chunk of scan %s is left: exiting", scan_id)
                    return 0
                time.sleep(got.get("retry_after_seconds", 2.0))  # others hold the rest; a lease may yet pass
                continue
            try:
                scan_chunk(api, chunk, got["heartbeat_seconds"])
            except Misconfigured as exc:
                log.error("scan-worker cannot read the data of chunk %s: %s", chunk["chunk_id"], exc)
                return EXIT_MISCONFIGURED
            except LeaseLost as exc:
                log.warning("chunk %s: %s", chunk["chunk_id"], exc)
            except ScanEnded as exc:
                log.info("scan %s is over (%s): exiting", scan_id, exc)
                return 0
    finally:
        api.close()


def scan_chunk(api: Api, chunk: dict, heartbeat_s: float) -> None:
    work = chunk["work"]
    log.info("chunk %s: %d files (attempt %d)", chunk["chunk_id"], len(work["data"]["files"]), chunk["attempt"])
    reporter = Reporter(api, chunk["chunk_id"], chunk["lease_id"])
    settings = worker_settings(work["data"])
    try:
        check_reachable(work, settings)
    except Misconfigured as exc:
        reporter.release(str(exc))
        raise
    with Heartbeat(reporter, heartbeat_s) as beat:
        run_chunk(work, None, reporter, settings, should_stop=lambda: beat.reason is not None)
    if beat.reason is not None:
        raise beat.reason
    log.info("chunk %s done", chunk["chunk_id"])


def check_reachable(work: dict, settings: Settings) -> None:
    """Misconfigured when a connector the chunk reads cannot be reached from here at all: reporting
    each of its files failed would end the scan with a verdict on data nobody read."""
    data = work["data"]
    sample: dict[str, str] = {}  # a file each connector of the chunk is to read
    for f in data["files"]:
        if not f.get("unchanged"):
            sample.setdefault(f["connector_id"], f["name"])
    for snap in data.get("connectors") or []:
        if snap["id"] not in sample:
            continue
        try:
            connector = connector_for(settings, work["workspaceid"], snap["type"], snap["config"])
            try:
                connector.probe(sample[snap["id"]] if snap["type"] == "s3" else None)
            finally:
                connector.close()
        except ConnectorError as exc:
            what = " ".join(str(exc).split())  # one line
            raise Misconfigured(f"connector {snap['id']} ({snap['type']}): {what}; {_fix(snap, exc, settings)}"
                                ) from None


def _fix(snap: dict, exc: ConnectorError, settings: Settings) -> str:
    """The setting that would let this worker reach the connector."""
    config = snap["config"]
    if snap["type"] in ("local_dir", "sqlite"):
        return (f'set SCANLEDGER_DATASTORE_ROOT (here "{settings.datastore_root}") to the directory that holds'
                f' "{config["path"]}"')
    credentials = config.get("credentials") or {}
    if exc.reason == "credentials" and credentials.get("source") == "env":
        names = [credentials[k] for k in ("access_key_id_env", "secret_access_key_env", "session_token_env")
                 if credentials.get(k)]
        return f"set {' and '.join(names)} in this worker's environment to keys the bucket accepts"
    if exc.reason == "credentials" and credentials.get("source") == "file":
        return f'set SCANLEDGER_SECRETS_DIR to the directory holding "{credentials["path"]}", with keys the bucket'\
               " accepts"
    if exc.reason == "endpoint":
        return f'add {config.get("endpoint_url")} to SCANLEDGER_S3_ENDPOINTS (or leave it unset)'
    if exc.reason == "unavailable":
        return f'let this worker reach {config.get("endpoint_url") or "AWS S3"} (its network, proxy or DNS)'
    return f'check that bucket "{config["bucket"]}" is there and these keys may read it'


def main_from_env() -> int:
    missing = [k for k in ("SCAN_ID", "COORDINATOR_URL", "AUTH_TOKEN") if not os.environ.get(k)]
    if missing:
        raise SystemExit(f"scan-worker needs {', '.join(missing)} (GET /api/v1/scans/:id/deployment-config"
                         " gives them)")
    try:
        return run(os.environ["SCAN_ID"], os.environ["COORDINATOR_URL"], os.environ["AUTH_TOKEN"],
                   os.environ.get("WORKER_ID"))
    except RuntimeError as exc:  # the API refused or stayed away: say so, no traceback; the lease passes on
        log.error("scan-worker stopped: %s", exc)
        return 1
