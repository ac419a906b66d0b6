"""What a sensitive-data scan looks for (seed 004's envelope; issue 19).

- GET /api/v1/detectors: every detector a scan of this workspace can run: the built-ins (what each
  validates, the confidences it gives) and the workspace's own (`custom: true`).
- /api/v1/detectors/custom: a workspace's own detectors: a name, an RE2 pattern (checked now, not at
  scan time), optionally a built-in checksum on the match, a confidence.
- /api/v1/allowlist: values never reported in this workspace (test card numbers, a shared mailbox),
  kept as keys (services.domain.detectors.validate.allow_key) and shown masked; never the value.

A scan takes a snapshot of both when it is requested (api/sensitive/routes.py): changing them
touches no scan already requested.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.routing import Route

from api.web.auth import authenticate
from api.web.changes import change
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found
from api.web.openapi import request_body
from api.web.requests import idempotent, json_body, parse
from api.web.responses import success
from services.domain.detectors import described
from services.domain.detectors.catalog import CHECKSUMS, CUSTOM_FAMILY, pattern_problem
from services.domain.detectors.validate import allow_key, mask_tail
from services.stores import detector_store

BUILT_IN = {d["name"] for d in described()} | {d["family"] for d in described()}


@request_body("POST", "/api/v1/detectors/custom")
class CustomDetectorBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,49}$", description="lower-case letters, digits and _")
    pattern: str = Field(min_length=1, max_length=1000, description="an RE2 pattern (no look-arounds)")
    checksum: Literal[tuple(CHECKSUMS)] | None = None  # type: ignore[valid-type]
    confidence: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8

    @field_validator("name")
    @classmethod
    def _not_built_in(cls, name: str) -> str:
        if name in BUILT_IN or name == CUSTOM_FAMILY:
            raise ValueError(f'"{name}" is a built-in detector or family')
        return name

    @field_validator("pattern")
    @classmethod
    def _runs(cls, pattern: str) -> str:
        if "\x00" in pattern:
            raise ValueError("must not contain a NUL character")
        problem = pattern_problem(pattern)
        if problem is not None:
            raise ValueError(problem)
        return pattern


@request_body("POST", "/api/v1/allowlist")
class AllowedBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: str = Field(min_length=1, max_length=1000, description="a value never to report (kept as a hash)")
    label: str | None = Field(None, max_length=200)


async def list_detectors(request: Request):
    """Every detector a scan can run here: the built-ins, then the workspace's own."""
    principal = await authenticate(request, "assets:read")
    own = await run_db(request, detector_store.list_custom, request.state.db, principal.workspace_id)
    return success([*({**d, "custom": False} for d in described()),
                    *({"name": d["name"], "family": CUSTOM_FAMILY, "validates": _validates(d),
                       "confidence": [d["confidence"]], "custom": True, "id": d["id"]} for d in own)])


def _validates(spec: dict) -> str:
    return f"the pattern {spec['pattern']}" + (f", with the {spec['checksum']} checksum" if spec["checksum"] else "")


async def create_custom(request: Request):
    """Add a detector of the workspace's own (409 if it has one of that name or 50 already)."""
    principal = await authenticate(request, "config:write")

    async def handler():
        body = parse(CustomDetectorBody, await json_body(request))
        row = await change(request, detector_store.add_custom, request.state.db, principal.workspace_id,
                                      body.model_dump())
        if row is None:
            raise ApiError(409, f'The workspace has a detector named "{body.name}" already, or'
                                f' {detector_store.MAX_CUSTOM} detectors of its own')
        return success(row, 201)

    return await idempotent(request, principal, handler)


async def list_custom(request: Request):
    principal = await authenticate(request, "assets:read")
    return success(await run_db(request, detector_store.list_custom, request.state.db, principal.workspace_id))


async def create_allowed(request: Request):
    """Never report this value in the workspace's scans from now on (the same value twice: one entry)."""
    principal = await authenticate(request, "config:write")

    async def handler():
        body = parse(AllowedBody, await json_body(request))
        row = await change(request, detector_store.add_allowed, request.state.db, principal.workspace_id,
                                      allow_key(body.value), mask_tail(body.value, min(4, len(body.value) // 3)),
                                      body.label)
        if row is None:
            raise ApiError(409, f"The workspace's allow-list holds {detector_store.MAX_ALLOWED} values already")
        return success(row, 201)

    return await idempotent(request, principal, handler)


async def list_allowed(request: Request):
    principal = await authenticate(request, "assets:read")
    return success(await run_db(request, detector_store.list_allowed, request.state.db, principal.workspace_id))


def _deleter(table: str, what: str):
    async def delete(request: Request):
        principal = await authenticate(request, "config:write")
        item_id = request.path_params["id"]
        if not await change(request, detector_store.delete, request.state.db, table, principal.workspace_id,
                                       item_id):
            raise not_found(f"{what} not found")
        return success({"id": item_id, "deleted": True})
    delete.__doc__ = f"Remove a {what.lower()}: scans requested from now on no longer use it."
    return delete


routes = [
    Route("/api/v1/detectors", list_detectors, methods=["GET"]),
    Route("/api/v1/detectors/custom", create_custom, methods=["POST"]),
    Route("/api/v1/detectors/custom", list_custom, methods=["GET"]),
    Route("/api/v1/detectors/custom/{id}", _deleter("custom_detectors", "Detector"), methods=["DELETE"]),
    Route("/api/v1/allowlist", create_allowed, methods=["POST"]),
    Route("/api/v1/allowlist", list_allowed, methods=["GET"]),
    Route("/api/v1/allowlist/{id}", _deleter("allowlist", "Allow-list entry"), methods=["DELETE"]),
]
