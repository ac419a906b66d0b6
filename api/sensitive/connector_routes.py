"""Seed 004's connectors: the sources a sensitive-data scan reads, by `conn-…` id.

The `{"status": "success", "data": …}` envelope of seed 004; errors have the API's one error
body (api/web/errors.py: seed 004 shows none). A connector's config is validated and confined by
services/adapters/connectors/, the registry seed 000's datastores use too; an s3
connector's credentials are references (an env var's name, a secret file's path), and no
response ever holds the secret they point at.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.web.auth import Principal, authenticate
from api.web.changes import change
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found, validation_error
from api.web.openapi import request_body
from api.web.requests import idempotent, json_body, parse
from api.web.responses import success
from services.adapters.connectors import ConnectorError, connector_for, public_config, validate_config
from services.stores import catalog_store

MAX_NAME = 1000
CONNECTOR_NOT_FOUND = "Connector not found"


@request_body("POST", "/api/v1/connectors")
class ConnectorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_NAME)
    type: Literal["local_dir", "s3", "sqlite"]
    config: dict[str, Any]

    @field_validator("name")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


def connector_view(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "type": row["type"],
            "config": public_config(row["type"], row["config"]), "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


# the config field a registration's ConnectorError is about: an S3 probe's reason says which
FIELD_OF_REASON = {"credentials": "credentials", "permission": "credentials", "endpoint": "endpoint_url",
                   "unavailable": "endpoint_url", "missing": "bucket"}


def _checked_config(settings, workspace_id: str, type_: str, config: dict) -> dict:
    """The stored config, and for S3 the bucket answered with these keys (a one-key listing, as a scan's
    enumeration lists it): a bucket that is not there or keys it refuses are a 400 now, not a failed scan."""
    stored = validate_config(settings, workspace_id, type_, config)
    if type_ == "s3":
        connector = connector_for(settings, workspace_id, type_, stored)
        try:
            connector.probe()
        finally:
            connector.close()
    return stored


async def create_connector(request: Request):
    """Register a connector: a local directory or SQLite database under the datastore root, or an S3 bucket."""
    principal = await authenticate(request, "config:write")

    async def handler():
        body = parse(ConnectorBody, await json_body(request))
        try:
            # not a database thread: an s3 config is checked against its endpoint
            config = await run_in_threadpool(_checked_config, request.state.settings, principal.workspace_id,
                                             body.type, body.config)
        except ValidationError as exc:
            raise validation_error(exc, prefix=("config",)) from None
        except ConnectorError as exc:
            field = FIELD_OF_REASON.get(exc.reason, "path")
            raise ApiError(400, "Invalid request body", [{"path": ["config", field], "message": str(exc)}]) from None
        row = await change(request, catalog_store.add_connector, request.state.db, principal.workspace_id,
                           body.name, body.type, config)
        return success(connector_view(row), 201)

    return await idempotent(request, principal, handler)


async def list_connectors(request: Request):
    """List the workspace's connectors."""
    principal = await authenticate(request, "assets:read")
    rows = await run_db(request, catalog_store.list_connectors, request.state.db, principal.workspace_id)
    return success([connector_view(r) for r in rows])


async def _connector(request: Request, principal: Principal) -> dict:
    row = await run_db(request, catalog_store.get_connector, request.state.db, principal.workspace_id,
                       request.path_params["id"])
    if row is None:
        raise not_found(CONNECTOR_NOT_FOUND)
    return row


async def get_connector(request: Request):
    """Get a connector."""
    principal = await authenticate(request, "assets:read")
    return success(connector_view(await _connector(request, principal)))


async def delete_connector(request: Request):
    """Remove a connector; scans that read it stay on the ledger."""
    principal = await authenticate(request, "config:write")
    row = await _connector(request, principal)
    await change(request, catalog_store.delete_connector, request.state.db, principal.workspace_id, row["id"])
    return success({"id": row["id"], "deleted": True})


routes = [
    Route("/api/v1/connectors", create_connector, methods=["POST"]),
    Route("/api/v1/connectors", list_connectors, methods=["GET"]),
    Route("/api/v1/connectors/{id}", get_connector, methods=["GET"]),
    Route("/api/v1/connectors/{id}", delete_connector, methods=["DELETE"]),
]
