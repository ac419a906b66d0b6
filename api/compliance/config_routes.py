"""Configuration API: uploads, column mappings and policies (ours to define; seeds 001/002 use them)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.scans.dialects import DialectBody
from api.web.auth import authenticate
from api.web.changes import change
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found, validation_error
from api.web.limits import MAX_DESCRIPTION, MAX_RULES, MAX_TEXT, rule_problems
from api.web.openapi import form_body, plain, request_body
from api.web.requests import idempotent, json_body, parse
from api.web.responses import json_response
from services.adapters.readers import Dialect, InputError, detect_format, ipc_head, read_with_dialect, to_ipc
from services.domain.envelope import new_id
from services.domain.pii import scan_pii
from services.domain.rules import MAPPING_TARGETS, mapping_warnings, parse_rule
from services.stores import config_store

UPLOAD_NOT_FOUND = "Upload not found. Upload data first."


def upload_view(u: dict, read_as: dict | None = None) -> dict:
    """`read_as`: how a CSV was read (its dialect, the header names made unique), as the upload's answer says."""
    return {"upload_id": u["id"], "filename": u["filename"], "record_count": u["record_count"],
            "columns": u["columns"], "pii_findings": u["pii_findings"], "created_at": u["created_at"],
            **(read_as or {})}


def _ingest(data: bytes, filename: str | None, content_type: str | None, max_records: int, blobs, dialect: Dialect):
    fmt = detect_format(filename, content_type)
    # Kept as text, so identifiers stay exact; a scan decides amounts per mapping. The PII
    # scan reads inferred types: an integer column is not text a person typed.
    table, read_as = read_with_dialect(data, fmt, max_records, as_text=True, dialect=dialect)
    findings = scan_pii(read_with_dialect(data, fmt, max_records, dialect=dialect)[0] if fmt == "csv" else table)
    return blobs.put(data), blobs.put(to_ipc(table)), table.num_rows, table.column_names, findings, read_as


form_body("POST", "/api/upload", {
    "file": {"type": "string", "format": "binary", "description": "CSV, JSON, JSONL or Parquet"},
    **{name: plain(prop) for name, prop in DialectBody.model_json_schema()["properties"].items()}}, ["file"])


async def create_upload(request: Request):
    """Upload a CSV, JSON/JSONL or Parquet file of records (multipart field `file`)."""
    principal = await authenticate(request, "config:write")

    async def handler():
        try:
            form = await request.form(max_files=1)
        except ApiError:  # the body cap (413)
            raise
        except Exception as exc:
            raise ApiError(400, "Invalid request body", [{"path": ["file"], "message": str(exc)}]) from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "Invalid request body", [{"path": ["file"], "message": "Required"}])
        try:
            dialect = DialectBody.model_validate({k: v for k, v in form.items() if k != "file"}).dialect()
        except ValidationError as exc:
            raise validation_error(exc) from None
        data = await upload.read()
        state = request.state
        try:
            raw_blob, blob, count, columns, findings, read_as = await run_in_threadpool(
                _ingest, data, upload.filename, upload.content_type, state.settings.max_upload_records, state.blobs,
                dialect)
        except InputError as exc:
            raise ApiError(exc.status, exc.message) from None
        row = await change(request, config_store.add_upload, state.db, principal.workspace_id, upload.filename,
                           raw_blob, blob, count, columns, findings)
        return json_response(upload_view(row, read_as), 201)

    return await idempotent(request, principal, handler)


@request_body("POST", "/api/mapping/confirm")
class MappingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    upload_id: str = Field(min_length=1)
    mapping: dict[str, str] = Field(min_length=1,
                                    description=f"{{target: column}}, targets: {', '.join(MAPPING_TARGETS)}")
    temporal_scale: Literal["daily", "weekly", "monthly"] = "daily"


MAPPING_SAMPLE_ROWS = 100_000  # the upload's first rows a confirmed mapping's columns are checked on


def mapping_view(m: dict, warnings: list[dict] | None = None) -> dict:
    return {"mapping_id": m["id"], "upload_id": m["upload_id"], "mapping": m["mapping"],
            "temporal_scale": m["temporal_scale"], "confirmed": True, "created_at": m["created_at"],
            **({"warnings": warnings} if warnings is not None else {})}


def _mapping_warnings(blobs, upload: dict, mapping: dict[str, str]) -> list[dict]:
    """A column mapped as a number or a timestamp whose first rows do not all read as one (CPU and file
    work: run in a thread)."""
    sample = ipc_head(blobs.path(upload["blob"]), list(mapping.values()), MAPPING_SAMPLE_ROWS)
    return mapping_warnings(mapping, sample)


async def confirm_mapping(request: Request):
    """Confirm the column mapping of an upload."""
    principal = await authenticate(request, "config:write")

    async def handler():
        body = parse(MappingBody, await json_body(request))
        # "amountz" would map a column to nothing a rule reads: the scan would fail on it only later
        unknown = [{"path": ["mapping", target], "message": f"Unknown target: one of {', '.join(MAPPING_TARGETS)}"}
                   for target in body.mapping if target not in MAPPING_TARGETS]
        if unknown:
            raise ApiError(400, "Invalid request body", unknown)
        db = request.state.db

        def confirm() -> dict:
            upload = config_store.get_upload(db, principal.workspace_id, body.upload_id)
            if upload is None:
                raise not_found(UPLOAD_NOT_FOUND)
            missing = [{"path": ["mapping", field], "message": f"Column '{column}' is not in the upload"}
                       for field, column in body.mapping.items() if column not in upload["columns"]]
            if missing:
                raise ApiError(400, "Invalid request body", missing)
            return upload

        upload = await run_db(request, confirm)
        warnings = await run_in_threadpool(_mapping_warnings, request.state.blobs, upload, body.mapping)
        row = await change(request, config_store.add_mapping, db, principal.workspace_id, body.upload_id,
                           body.mapping, body.temporal_scale)
        return json_response(mapping_view(row, warnings), 201)

    return await idempotent(request, principal, handler)


@request_body("POST", "/api/policies")
@request_body("PUT", "/api/policies/{id}")
class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_TEXT)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    rules: list[dict[str, Any]] = Field(max_length=MAX_RULES)


def _policy_from(body: dict) -> PolicyBody:
    """Validate a policy body (CPU work: callers run it in a thread, off the event loop)."""
    policy = parse(PolicyBody, body)
    rules, details = [], []
    for i, raw in enumerate(policy.rules):
        raw = {"id": new_id(), **raw}
        try:
            rule = parse_rule(raw).model_dump()
        except ValidationError as exc:
            details += validation_error(exc, prefix=("rules", i)).details
            continue
        problems = rule_problems(rule, i)
        details += problems
        if not problems:
            rules.append(rule)
    counts = Counter(r["id"] for r in rules)
    details += [{"path": ["rules"], "message": f"Duplicate rule id '{rid}'"}
                for rid in sorted(rid for rid, n in counts.items() if n > 1)]
    if details:
        raise ApiError(400, "Invalid request body", details)
    policy.rules = rules
    return policy


def policy_view(p: dict) -> dict:
    return {"id": p["id"], "name": p["name"], "description": p["description"], "rules": p["rules"],
            "created_at": p["created_at"], "updated_at": p["updated_at"]}


async def create_policy(request: Request):
    """Create a compliance policy with its rules."""
    principal = await authenticate(request, "config:write")

    async def handler():
        policy = await run_in_threadpool(_policy_from, await json_body(request))
        row = await change(request, config_store.add_policy, request.state.db, principal.workspace_id,
                           policy.name, policy.description, policy.rules)
        return json_response(policy_view(row), 201)

    return await idempotent(request, principal, handler)


async def list_policies(request: Request):
    """List the workspace's policies."""
    principal = await authenticate(request, "assets:read")
    policies = await run_db(request, config_store.list_policies, request.state.db, principal.workspace_id)
    items = [policy_view(p) for p in policies]
    return json_response({"items": items, "total": len(items)})


async def get_policy(request: Request):
    """Get a policy."""
    principal = await authenticate(request, "assets:read")
    row = await run_db(request, config_store.get_policy, request.state.db, principal.workspace_id,
                       request.path_params["id"])
    if row is None:
        raise not_found("Policy not found")
    return json_response(policy_view(row))


async def update_policy(request: Request):
    """Replace a policy's name, description and rules."""
    principal = await authenticate(request, "config:write")
    policy = await run_in_threadpool(_policy_from, await json_body(request))
    row = await change(request, config_store.update_policy, request.state.db, principal.workspace_id,
                       request.path_params["id"], policy.name, policy.description, policy.rules)
    if row is None:
        raise not_found("Policy not found")
    return json_response(policy_view(row))


async def delete_policy(request: Request):
    """Delete a policy; scans that used it keep their snapshot."""
    principal = await authenticate(request, "config:write")
    if not await change(request, config_store.delete_policy, request.state.db, principal.workspace_id,
                        request.path_params["id"]):
        raise not_found("Policy not found")
    return Response(status_code=204)


routes = [
    Route("/api/upload", create_upload, methods=["POST"]),
    Route("/api/mapping/confirm", confirm_mapping, methods=["POST"]),
    Route("/api/policies", create_policy, methods=["POST"]),
    Route("/api/policies", list_policies, methods=["GET"]),
    Route("/api/policies/{id}", get_policy, methods=["GET"]),
    Route("/api/policies/{id}", update_policy, methods=["PUT"]),
    Route("/api/policies/{id}", delete_policy, methods=["DELETE"]),
]
