"""Reading and validating request bodies and the Idempotency-Key replay."""
from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api.web.auth import Principal
from api.web.db_work import run_db
from api.web.errors import ApiError, validation_error
from services.stores import request_store

M = TypeVar("M", bound=BaseModel)
RETRY_IDS = uuid.UUID("6f9c1d2e-3b4a-5c6d-8e7f-90a1b2c3d4e5")  # the namespace of stable_id's uuid5s


def stable_id(request: Request, fallback: str, prefix: str = "") -> str:
    """The id of what a request creates: under an Idempotency-Key the same on every retry (an API that
    died after writing the scan's command but before keeping its answer is retried into the same scan,
    which the ledger takes once), else `fallback` (a fresh uuid, `prefix` and all). `prefix` begins
    the retry's id as it begins the fallback (a kind's scan ids: services.domain.kinds)."""
    seed = getattr(request.state, "idempotency_seed", None)
    return f"{prefix}{uuid.uuid5(RETRY_IDS, seed)}" if seed else fallback


def is_json(content_type: str | None) -> bool:
    """`application/json` or a `+json` type (`application/merge-patch+json`), any parameters (charset)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# What `curl -d` sends without `-H 'Content-Type: application/json'`: every curl example in the README and
# scripts written against earlier releases. A body so labelled that is a JSON object is read as JSON.
CURL_DEFAULT = "application/x-www-form-urlencoded"


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "Unsupported media type: the body must be JSON",
                    [{"path": [], "message": f"Content-Type {content_type!r}: expected application/json"}])


async def json_body(request: Request, allow_empty: bool = False) -> dict:
    """The request's JSON object. A body sent as another media type (text/plain, a form) is a 415
    before it is read; no Content-Type at all is read as JSON, and so is a JSON object labelled as a
    form, as `curl -d` does (docs/decisions.md, "400, 415, 422")."""
    content_type = request.headers.get("content-type")
    curl_default = (content_type or "").split(";", 1)[0].strip().lower() == CURL_DEFAULT
    if content_type is not None and not is_json(content_type) and not curl_default:
        raise unsupported_media_type(content_type)
    raw = await request.body()
    if curl_default and not _json_object(raw):
        raise unsupported_media_type(content_type)  # a real form (a=1&b=2), not JSON that curl -d labelled so
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "Invalid request body", [{"path": [], "message": "Required"}])
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Invalid request body", [{"path": [], "message": "Malformed JSON"}]) from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid request body", [{"path": [], "message": "Expected an object"}])
    return data


def parse(model: type[M], data: dict) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


# A concurrent request with a key another request holds waits this long for its answer, then
# gets 409; a reservation whose request died (the API stopped mid-request) lapses after this.
IDEMPOTENCY_WAIT_S = 30.0
IDEMPOTENCY_PENDING_S = 120.0


def _body_hash(request: Request, raw: bytes) -> str:
    """The body's hash; a multipart body without its boundary, which clients draw at random per send."""
    boundary = re.search(r'boundary="?([^";]+)"?', request.headers.get("content-type", ""))
    if boundary:
        raw = raw.replace(boundary.group(1).encode(), b"")
    return hashlib.sha256(raw).hexdigest()


async def idempotent(request: Request, principal: Principal, handler,
                     redact: Callable[[dict], dict] | None = None) -> Response:
    """Run a POST handler once per Idempotency-Key: a retry gets the first answer back.

    Call it after authenticate() has checked the role. The key is bound to the caller's
    token, the method and path, and a hash of the body: another token's key is a different
    key, and the same key with another body is a 422. It is reserved before the work is done,
    so concurrent requests with one key do the work once: the others wait for the first
    answer (409 if it takes over IDEMPOTENCY_WAIT_S). Answers are kept
    SCANLEDGER_IDEMPOTENCY_TTL_SECONDS (24 h); 5xx answers and errors are not kept, so a retry
    runs again. `redact` removes secrets from the kept answer: a replay never shows one.
    """
    key = request.headers.get("idempotency-key")
    if not key:
        return await handler()
    db = request.state.db
    ttl_s = request.state.settings.idempotency_ttl_s
    route = f"{request.method} {request.url.path}"
    body_hash = _body_hash(request, await request.body())
    give_up = time.monotonic() + IDEMPOTENCY_WAIT_S

    def reserve():  # one transaction, on one database thread: of concurrent requests one reserves the key
        return request_store.reserve_key(db, principal.token_id, key, route, body_hash, time.time(), ttl_s,
                                        IDEMPOTENCY_PENDING_S)

    def held_now():
        return request_store.idempotent_row(db, principal.token_id, key, route) or reserve()

    request.state.idempotency_seed = f"{principal.token_id}|{key}|{route}|{body_hash}"
    held = await run_db(request, reserve)
    while held is not None:
        if held["body_hash"] != body_hash:
            raise ApiError(422, "This Idempotency-Key was already used with a different request body")
        if held["state"] == "done":
            return Response(bytes(held["body"]), status_code=held["status"], media_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
        if time.monotonic() > give_up:
            raise ApiError(409, "A request with this Idempotency-Key is still in progress",
                           headers={"Retry-After": "1"})
        await asyncio.sleep(0.05)
        # waiting only reads; a key the first request gave up (it failed) is taken again
        held = await run_db(request, held_now)
    try:
        response = await handler()
    except BaseException:
        # on the loop, not awaited: a cancelled request must still free its key
        request_store.release_key(db, principal.token_id, key, route)
        raise
    if response.status_code >= 500:
        await run_db(request, request_store.release_key, db, principal.token_id, key, route)
        return response
    kept = response.body
    if redact is not None and response.body:
        kept = orjson.dumps(redact(orjson.loads(response.body)))
    await run_db(request, request_store.remember_answer, db, principal.token_id, key, route, response.status_code,
                 kept)
    return response
