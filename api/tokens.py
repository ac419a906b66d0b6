"""Workspaces and API tokens: Admins issue and revoke tokens; the bootstrap admin adds workspaces."""
from __future__ import annotations

import hmac
import re
import secrets
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from api.web.auth import Principal, authenticate
from api.web.changes import change
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found
from api.web.openapi import request_body
from api.web.requests import idempotent, json_body, parse
from api.web.response_schemas import STR, TIME, answers, listing, nullable, obj
from api.web.responses import json_response
from services.stores import config_store

Role = Literal["Admin", "Member", "Viewer"]


def new_token() -> str:
    return f"sl_{secrets.token_urlsafe(32)}"


@request_body("POST", "/api/tokens")
class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    user: str = Field(min_length=1, max_length=200, description="user name or e-mail: the triggered_by of runs")


ROLE = {"enum": list(get_args(Role))}
TOKEN = obj({"id": STR, "role": ROLE, "user": STR, "workspace_id": STR, "created_at": TIME})
# the secret, shown once: null when a retry with the same Idempotency-Key answers again
answers("POST", "/api/tokens", {**TOKEN, "required": [*TOKEN["required"], "token"],
                                "properties": {**TOKEN["properties"], "token": nullable(STR)}})
answers("GET", "/api/tokens", listing(TOKEN))
answers("POST", "/api/workspaces", obj({"id": STR, "name": STR, "created_at": TIME, "admin_token": obj({
    "id": STR, "token": nullable(STR), "role": {"const": "Admin"}, "user": STR})}))


def token_view(row: dict, workspace_id: str) -> dict:
    return {"id": row["id"], "role": row["role"], "user": row["user_name"], "workspace_id": workspace_id,
            "created_at": row["created_at"]}


async def create_token(request: Request):
    """Issue a token of this workspace with a role; the secret is shown once, stored hashed."""
    principal = await authenticate(request, "tokens:manage")

    async def handler():
        body = parse(TokenBody, await json_body(request))
        db = request.state.db
        token = new_token()

        def issue() -> dict:
            token_id = config_store.add_token(db, token, principal.workspace_id, body.role, body.user)
            return next(t for t in config_store.list_tokens(db, principal.workspace_id) if t["id"] == token_id)

        row = await change(request, issue)
        return json_response({**token_view(row, principal.workspace_id), "token": token}, 201)

    # a retry with the same Idempotency-Key gets the same token back without its secret ("token": null)
    return await idempotent(request, principal, handler, redact=lambda answer: {**answer, "token": None})


async def list_tokens(request: Request):
    """The workspace's live tokens (never their secrets)."""
    principal = await authenticate(request, "tokens:manage")
    tokens = await run_db(request, config_store.list_tokens, request.state.db, principal.workspace_id)
    items = [token_view(t, principal.workspace_id) for t in tokens]
    return json_response({"items": items, "total": len(items)})


async def revoke_token(request: Request):
    """Revoke a token: it stops working at once."""
    principal = await authenticate(request, "tokens:manage")
    if not await change(request, config_store.revoke_token, request.state.db, principal.workspace_id,
                        request.path_params["id"]):
        raise not_found("Token not found")
    return Response(status_code=204)


@request_body("POST", "/api/workspaces")
class WorkspaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    admin_user: str = Field("admin", min_length=1, max_length=200)


def _is_bootstrap_admin(request: Request) -> bool:
    configured = request.state.settings.admin_token
    given = request.headers.get("authorization", "").partition(" ")[2].strip()
    return bool(configured) and hmac.compare_digest(given.encode(), configured.encode())


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "workspace"


async def create_workspace(request: Request):
    """Create a workspace with its first Admin token (bootstrap admin only)."""
    principal: Principal = await authenticate(request)
    if not _is_bootstrap_admin(request):
        raise ApiError(403, f"Only the bootstrap admin can create workspaces (you are {principal.user})")

    async def handler():
        body = parse(WorkspaceBody, await json_body(request))
        db = request.state.db
        workspace_id = f"{_slug(body.name)}-{secrets.token_hex(3)}"
        token = new_token()

        def create() -> tuple[str, dict]:  # one change: the workspace and its Admin token, or neither
            config_store.ensure_workspace(db, workspace_id, body.name)
            token_id = config_store.add_token(db, token, workspace_id, "Admin", body.admin_user)
            return token_id, config_store.get_workspace(db, workspace_id)

        token_id, workspace = await change(request, create)
        return json_response({"id": workspace_id, "name": workspace["name"], "created_at": workspace["created_at"],
                              "admin_token": {"id": token_id, "token": token, "role": "Admin",
                                              "user": body.admin_user}}, 201)

    def redact(answer: dict) -> dict:  # a retry shows the workspace and its Admin token, never the secret
        return {**answer, "admin_token": {**answer["admin_token"], "token": None}}

    return await idempotent(request, principal, handler, redact=redact)


router = Router(routes=[
    Route("/api/tokens", create_token, methods=["POST"]),
    Route("/api/tokens", list_tokens, methods=["GET"]),
    Route("/api/tokens/{id}", revoke_token, methods=["DELETE"]),
    Route("/api/workspaces", create_workspace, methods=["POST"]),
])
