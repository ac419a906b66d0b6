"""BYOC scans (seed 004): scan workers the customer runs in their own network, next to their data.

A scan started with `options.execution: "byoc"` is enumerated and split into chunks by the
coordinator as usual, but its chunks wait on the ledger (chunk.offered) instead of going to the
in-cluster evaluators.

- GET /api/v1/scans/:id/deployment-config (Admin, Member): the worker image, the environment
  that configures `scanledger scan-worker` (SCAN_ID, COORDINATOR_URL, AUTH_TOKEN: a new
  per-scan worker token on each call, stored hashed) and the chunks with their files and where
  to reach them (never a secret: a worker takes credentials from its own environment).
- POST /api/v1/scans/:id/report (the scan's worker token only): `claim` a chunk (a lease of
  worker_lease_s), `heartbeat`, or `events`: what the chunk found, which the API checks against
  the leased chunk (services.domain.chunk_reports) and writes to the ledger as the same events
  the in-cluster evaluators write, with the same deterministic ids; or `release`: the worker
  cannot reach the chunk's data and gives it back unscanned. A report is idempotent; one
  from a worker whose lease passed to another is a 409, and a dead scan's token a 401.
"""
from __future__ import annotations

import asyncio
import logging
import time
from functools import lru_cache
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, RootModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.scans.commands import wait_until
from api.sensitive import queries as sq
from api.web.auth import authenticate
from api.web.changes import change
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found, unavailable
from api.web.openapi import request_body
from api.web.requests import json_body, parse
from api.web.responses import success
from services.adapters.command_writer import CommandNotWritten
from services.domain import contracts as c
from services.domain.chunk_reports import BadReport, ChunkFiles, checked, event_id
from services.domain.envelope import follow, utcnow, with_actor
from services.domain.ledger_chain import Chain, unit_stream
from services.domain.vocabulary import BYOC_WORKER_SOURCE, FINISHED
from services.stores import byoc_store, request_store

log = logging.getLogger("scanledger.api.byoc")

MAX_EVENTS = 2000  # per report; the worker sends at most its batch
HEARTBEAT_S = 2.0  # how often a worker reports while it scans: a cancel reaches it within about this
FILES_CACHE = 64  # chunks whose file lists the API keeps at hand between reports


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["claim"]
    worker_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["heartbeat"]
    chunk_id: str = Field(min_length=1, max_length=200)
    lease_id: str = Field(min_length=1, max_length=100)


class Events(Heartbeat):
    type: Literal["events"]  # type: ignore[assignment]
    events: list[dict] = Field(min_length=1, max_length=MAX_EVENTS)


class Release(Heartbeat):
    """The worker gives back a chunk it cannot scan (it cannot reach the data): claimable again at once."""
    type: Literal["release"]  # type: ignore[assignment]
    reason: str = Field("", max_length=1000)


@request_body("POST", "/api/v1/scans/{id}/report")
class ReportBody(RootModel[Annotated[Claim | Heartbeat | Events | Release, Field(discriminator="type")]]):
    """One report: its `type` says which."""


NO_STORE = {"Cache-Control": "no-store"}  # a lease, a token, a chunk: never from a cache


# --- deployment-config ---

def _uri(snap: dict, name: str) -> str:
    config = snap["config"]
    if snap["type"] == "s3":
        return f"s3://{config['bucket']}/{name}"
    if snap["type"] == "sqlite":
        return f"sqlite://{config['path']}#{name}"
    return f"{config['path'].rstrip('/')}/{name}"


def connector_config(snap: dict) -> dict:
    """Where a worker reaches a connector's data; credentials only by reference (env var or file names)."""
    return {"connector_id": snap["id"], "type": snap["type"],
            **{k: v for k, v in snap["config"].items() if k != "resolved_path"}}


def chunk_view(offer: dict, files: list[dict]) -> dict:
    snaps = {s["id"]: s for s in offer["data"]["connectors"]}
    used = list(dict.fromkeys(f["connector_id"] for f in files))
    configs = [connector_config(snaps[cid]) for cid in used]
    return {"chunk_id": offer["data"]["unit_id"], "files": [_uri(snaps[f["connector_id"]], f["name"]) for f in files],
            # one connector's config; a chunk across connectors (at their boundary) lists each one's
            "connector_config": configs[0] if len(configs) == 1 else {"connectors": configs}}


def _byoc_scan(db, workspace_id: str, scan_id: str):
    row = sq.scan_row(db, workspace_id, scan_id)
    if row is None:
        return None
    if orjson.loads(row["options"]).get("execution") != "byoc":
        raise ApiError(409, "The scan runs on the in-cluster workers: start a scan with options.execution"
                            ' "byoc" to run its workers in your own infrastructure')
    if row["ledger_status"] in FINISHED:
        raise ApiError(409, f"The scan has already finished ({sq.SEED_STATUS[row['ledger_status']]})")
    return row


def _offers(db, scan_id: str) -> list[dict]:
    return [orjson.loads(r["work"]) for r in
            db.execute("SELECT work FROM rm_sensitive_offers WHERE scan_id = ? ORDER BY idx", (scan_id,))]


def _issue_token(db, workspace_id: str, scan_id: str) -> str:
    token = byoc_store.new_worker_token()
    byoc_store.add_worker_token(db, token, workspace_id, scan_id, utcnow())
    return token


async def deployment_config(request: Request):
    """What it takes to run a BYOC scan's workers in your own infrastructure (issues a worker token)."""
    principal = await authenticate(request, "scan:trigger")
    state, scan_id, ws = request.state, request.path_params["id"], principal.workspace_id
    db = state.db
    # a scan just started: briefly, until the coordinator has enumerated it and offered its chunks;
    # an id no API gave out is a 404 at once (not after the wait: a prober would hold a thread 2 s a guess)
    await wait_until(request, lambda: sq.scan_row(db, ws, scan_id) is not None or not request_store.issued(db, scan_id),
                     2.0)
    row = await run_db(request, _byoc_scan, db, ws, scan_id)
    if row is None:
        raise not_found("Scan not found")

    def enumerated() -> bool:
        scan = sq.scan_row(db, ws, scan_id)
        return scan is not None and (scan["enumeration_status"] != "in_progress" or scan["ledger_status"] != "queued")

    def offered() -> bool:  # chunk.offered lands after scan.started, maybe in a later batch of the projector
        started = db.execute("SELECT COUNT(*) FROM rm_sensitive_chunks WHERE scan_id = ?", (scan_id,)).fetchone()[0]
        offers = db.execute("SELECT COUNT(*) FROM rm_sensitive_offers WHERE scan_id = ?", (scan_id,)).fetchone()[0]
        return enumerated() and offers >= started

    await wait_until(request, offered, state.settings.scan_sync_wait_s)
    offers = await run_db(request, _offers, db, scan_id)
    chunks = [chunk_view(o, await chunk_files(request, o["data"])) for o in offers]
    token = await change(request, _issue_token, db, ws, scan_id)
    base = state.settings.public_url or str(request.base_url).rstrip("/")
    return success({"container_image": state.settings.worker_image,
                    "environment": {"SCAN_ID": scan_id, "COORDINATOR_URL": f"{base}/api/v1/scans/{scan_id}/report",
                                    "AUTH_TOKEN": token},
                    "chunks": chunks}, headers=NO_STORE)


async def chunk_files(request: Request, work: dict) -> list[dict]:
    """A chunk's files (in the blob store, by reference from its work), kept at hand for its reports."""
    return await run_in_threadpool(_files, request.state.blobs, work["blob"]) if work.get("blob") else []


@lru_cache(maxsize=FILES_CACHE)
def _files(blobs, blob: str) -> list[dict]:
    return orjson.loads(blobs.get(blob))


# --- report ---

async def report(request: Request):
    """A BYOC worker's claim, heartbeat or findings for one chunk of its scan."""
    principal = await authenticate(request, "scan:report")
    scan_id = request.path_params["id"]
    if principal.scan_id != scan_id:
        raise ApiError(403, "This worker token reports on its own scan only")
    body = parse(ReportBody, await json_body(request)).root
    settings, db = request.state.settings, request.state.db
    if isinstance(body, Claim):
        return await _claim(request, body.worker_id)
    found = await run_db(request, byoc_store.lease, db, scan_id, body.chunk_id, body.lease_id)
    if found is None:
        raise ApiError(409, "This worker no longer holds the chunk: its lease passed to another worker, or the"
                            " chunk is done. Claim another.")
    if isinstance(body, Release):
        # nothing of the chunk was reported (or what was stays, counted once by its ids): the next claim takes it
        await run_db(request, byoc_store.release, db, body.chunk_id, body.lease_id, time.time())
        log.warning("scan %s: worker %s released chunk %s: %s", scan_id, found["worker_id"], body.chunk_id,
                    body.reason or "no reason given")
        return success({"accepted": 0, "released": True}, headers=NO_STORE)
    done, accepted = False, 0
    if isinstance(body, Events):
        work = orjson.loads(found["work"])
        files = await chunk_files(request, work["data"])
        start = work["data"].get("start_index") or 0
        chunk = ChunkFiles(files, start)
        try:
            events = [checked(i, raw, work["data"], chunk) for i, raw in enumerate(body.events)]
        except BadReport as exc:
            raise ApiError(400, "Invalid report", [{"path": ["events", exc.index, *exc.path],
                                                    "message": str(exc)}]) from None
        chain = await _write(request, work, events, found)
        done, accepted = any(t == c.UNIT_COMPLETED for t, _ in events), len(events)
    else:
        chain = None
    if not await run_db(request, byoc_store.renew, db, body.chunk_id, body.lease_id, settings.worker_lease_s,
                        time.time(), done, chain):
        raise ApiError(409, "This worker no longer holds the chunk: its lease passed to another worker. Claim"
                            " another.")
    return success({"accepted": accepted, "lease_seconds": settings.worker_lease_s, "chunk_done": done},
                   headers=NO_STORE)


async def _claim(request: Request, worker_id: str):
    settings, db, scan_id = request.state.settings, request.state.db, request.path_params["id"]
    got = await run_db(request, byoc_store.claim, db, scan_id, worker_id, settings.worker_lease_s, time.time())
    chunk = got["chunk"]
    if chunk is None:
        return success({"chunk": None, "open_chunks": got["open"], "retry_after_seconds": HEARTBEAT_S},
                       headers=NO_STORE)
    work = orjson.loads(chunk["work"])
    files = await chunk_files(request, work["data"])
    data = {k: v for k, v in work["data"].items() if k != "blob"}
    data["files"] = files  # inline: the worker has no access to the blob store
    data["connectors"] = [{**s, "config": {k: v for k, v in s["config"].items() if k != "resolved_path"}}
                          for s in data["connectors"]]
    return success({"chunk": {"chunk_id": chunk["unit_id"], "lease_id": chunk["lease_id"],
                              "attempt": chunk["attempt"], "work": {**work, "data": data}},
                    "open_chunks": got["open"], "lease_seconds": settings.worker_lease_s,
                    "heartbeat_seconds": HEARTBEAT_S}, headers=NO_STORE)


async def _write(request: Request, work: dict, events: list[tuple[str, dict]], lease: dict) -> tuple[int, str]:
    """The reported events on the ledger, as the in-cluster evaluator writes them (naming the worker and
    its token), links of the chunk's chain in the order reported, before the answer. Returns where the
    chain stands after them."""
    topics, writer, principal = request.state.settings.topics, request.state.commands, request.state.principal
    chain = Chain(unit_stream(lease["unit_id"], lease["attempt"]), lease["chain_seq"], lease["chain_prev"])
    sealed = []
    for type_, data in events:
        event = with_actor(follow(work, type_, data, id=event_id(type_, data), source=BYOC_WORKER_SOURCE),
                           principal.token_id, principal.role, lease["worker_id"])
        sealed.append((topics.findings if type_ == c.FINDING_DETECTED else topics.scan_events, event,
                       chain.seal(event)))
    try:
        await asyncio.gather(*(writer.write(topic, event, raw=raw) for topic, event, raw in sealed))
    except CommandNotWritten as exc:
        raise unavailable(f"The ledger is unavailable ({exc}): send the report again", writer.timeout_s) from None
    return chain.seq, chain.prev


routes = [
    Route("/api/v1/scans/{id}/deployment-config", deployment_config, methods=["GET"]),
    Route("/api/v1/scans/{id}/report", report, methods=["POST"]),
]
