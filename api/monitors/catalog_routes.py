"""Datastores, their assets and the assets' monitors (ours to define; seed 000 builds on them)."""
from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.scans import reads
from api.scans.commands import start_scan
from api.scans.dialects import DatastoreDialect
from api.scans.snapshots import sync_request, target_refs
from api.web.auth import Principal, authenticate
from api.web.changes import change
from api.web.db_work import run_db
from api.web.errors import ApiError, not_found, validation_error
from api.web.limits import monitor_problems
from api.web.openapi import param, query_params, request_body
from api.web.params import path_int, query_id
from api.web.requests import idempotent, json_body, parse
from api.web.responses import json_response
from services.adapters.connectors.datastores import (
    DatastoreError,
    check_allowed,
    list_containers,
    resolve_path,
    system_paths,
    workspace_root,
)
from services.domain.monitors import parse_monitor
from services.domain.vocabulary import DEFAULT_SEVERITY, Severity
from services.stores import catalog_store, config_log

MAX_NAME, MAX_PATH = 1000, 4096
DATASTORE_NOT_FOUND = "Datastore not found"
ASSET_NOT_FOUND = "Asset not found"
MONITOR_NOT_FOUND = "Monitor not found"


def _int_id(request: Request, name: str, message: str) -> int:
    """Integer ids in the path ({id:id64}: other text matches no route); past 64 bits a 404 as for an unknown id."""
    return path_int(request, name, not_found(message))


# --- datastores ---

@request_body("POST", "/api/datastores")
class DatastoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_NAME)
    type: Literal["local_dir", "sqlite"]
    path: str = Field(min_length=1, max_length=MAX_PATH)
    dialect: DatastoreDialect | None = None  # how its CSV files are written (each field left out: sniffed)

    @field_validator("name", "path")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


def datastore_view(d: dict) -> dict:
    return {"id": d["id"], "name": d["name"], "type": d["type"], "path": d["path"], "created_at": d["created_at"],
            **({"dialect": d["dialect"]} if d.get("dialect") else {})}


async def create_datastore(request: Request):
    """Register a datastore: a directory of files or a SQLite database, inside the datastore root."""
    principal = await authenticate(request, "config:write")

    async def handler():
        body = parse(DatastoreBody, await json_body(request))
        if body.dialect is not None and body.type != "local_dir":
            raise ApiError(400, "Invalid request body", [{"path": ["dialect"], "message": (
                "a dialect says how CSV files are written: a local_dir datastore's, not a database's")}])
        try:
            settings = request.state.settings
            resolved = resolve_path(workspace_root(settings, principal.workspace_id), body.path, body.type,
                                    system_paths(settings))
        except DatastoreError as exc:
            raise ApiError(exc.status, "Invalid request body", [{"path": ["path"], "message": str(exc)}]) from None
        except (OSError, ValueError) as exc:  # a name the filesystem refuses (too long, …)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ApiError(400, "Invalid request body",
                           [{"path": ["path"], "message": f"invalid path: {reason}"}]) from None
        row = await change(request, catalog_store.add_datastore, request.state.db, principal.workspace_id,
                           body.name, body.type, body.path, str(resolved),
                           body.dialect.stored() if body.dialect else None)
        return json_response(datastore_view(row), 201)

    return await idempotent(request, principal, handler)


async def list_datastores(request: Request):
    """List the workspace's datastores."""
    principal = await authenticate(request, "assets:read")
    stores = await run_db(request, catalog_store.list_datastores, request.state.db, principal.workspace_id)
    items = [datastore_view(d) for d in stores]
    return json_response({"items": items, "total": len(items)})


async def _datastore(request: Request, principal: Principal) -> dict:
    row = await run_db(request, catalog_store.get_datastore, request.state.db, principal.workspace_id,
                       _int_id(request, "id", DATASTORE_NOT_FOUND))
    if row is None:
        raise not_found(DATASTORE_NOT_FOUND)
    return row


async def get_datastore(request: Request):
    """Get a datastore."""
    principal = await authenticate(request, "assets:read")
    return json_response(datastore_view(await _datastore(request, principal)))


async def delete_datastore(request: Request):
    """Remove a datastore; its past runs and findings stay on the ledger."""
    principal = await authenticate(request, "config:write")
    row = await _datastore(request, principal)
    await change(request, catalog_store.delete_datastore, request.state.db, principal.workspace_id, row["id"])
    return Response(status_code=204)


async def sync_datastore(request: Request):
    """Sync (a catalog run on the ledger): find the datastore's assets and profile each one."""
    principal = await authenticate(request, "scan:trigger")

    async def handler():
        db = request.state.db
        store = await _datastore(request, principal)
        try:
            check_allowed(request.state.settings, principal.workspace_id, store["type"], store["resolved_path"])
            found = await run_in_threadpool(list_containers, store["type"], store["resolved_path"])
        except DatastoreError as exc:
            raise ApiError(exc.status, str(exc)) from None

        def register() -> list[dict]:  # the datastore's assets found there now
            catalog_store.register_assets(db, principal.workspace_id, store["id"], found)
            present = {name for name, _ in found}
            return [a for a in catalog_store.list_assets(db, principal.workspace_id, store["id"])
                    if a["name"] in present]

        synced = await change(request, register)
        versions = await run_db(request, config_log.versions, db,
                                [("datastores", store["id"]), *target_refs(synced)])
        scan_request = sync_request(principal, store, synced, versions)
        operation_id = await start_scan(request, scan_request)
        return json_response({"operation_id": operation_id, "scan_id": scan_request["scan_id"], "status": "running",
                              "assets": await run_db(request, asset_views, db, synced)}, 202)

    return await idempotent(request, principal, handler)


# --- assets ---

def asset_view(db, a: dict) -> dict:
    profile = reads.asset_profile(db, a["id"])
    return {"id": a["id"], "name": a["name"], "container_type": a["container_type"],
            "datastore": {"id": a["datastore_id"], "name": a["datastore_name"]},
            "columns": orjson.loads(profile["columns"]) if profile else None,
            "row_count": profile["row_count"] if profile else None,
            "synced_at": profile["synced_at"] if profile else None}


def asset_views(db, assets: list[dict]) -> list[dict]:
    return [asset_view(db, a) for a in assets]


async def list_assets(request: Request):
    """The workspace's assets (tables and files), optionally of one datastore (?datastore=ID)."""
    principal = await authenticate(request, "assets:read")
    db = request.state.db
    datastore_id = query_id(request, "datastore")

    def views() -> list[dict]:
        return asset_views(db, catalog_store.list_assets(db, principal.workspace_id, datastore_id))

    items = await run_db(request, views)
    return json_response({"items": items, "total": len(items)})


async def _asset(request: Request, principal: Principal) -> dict:
    row = await run_db(request, catalog_store.get_asset, request.state.db, principal.workspace_id,
                       _int_id(request, "assetId", ASSET_NOT_FOUND))
    if row is None:
        raise not_found(ASSET_NOT_FOUND)
    return row


async def get_asset(request: Request):
    """Get an asset with its latest profile."""
    principal = await authenticate(request, "assets:read")
    asset = await _asset(request, principal)
    return json_response(await run_db(request, asset_view, request.state.db, asset))


# --- monitors ---

@request_body("POST", "/api/assets/{assetId}/monitors")
class MonitorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_NAME)
    type: str = Field(max_length=MAX_NAME)
    severity: Severity = DEFAULT_SEVERITY
    enabled: bool = True
    params: dict[str, Any] = {}


@request_body("PATCH", "/api/assets/{assetId}/monitors/{monitorId}")
class MonitorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    severity: Severity | None = None
    enabled: bool | None = None
    params: dict[str, Any] | None = None


def _checked(spec: dict) -> dict:
    """Validate a monitor's type and params now, so a scan never meets a malformed one."""
    try:
        parse_monitor({"id": "new", **spec})
    except ValidationError as exc:
        raise validation_error(exc) from None
    except ValueError as exc:
        raise ApiError(400, "Invalid request body", [{"path": ["params"], "message": str(exc)}]) from None
    problems = monitor_problems(spec)
    if problems:
        raise ApiError(400, "Invalid request body", problems)
    return spec


def monitor_view(m: dict) -> dict:
    return {"id": m["id"], "asset_id": m["asset_id"], "name": m["name"], "type": m["type"],
            "severity": m["severity"], "enabled": m["enabled"], "params": m["params"],
            "created_at": m["created_at"], "updated_at": m["updated_at"]}


async def create_monitor(request: Request):
    """Attach a monitor to an asset."""
    principal = await authenticate(request, "config:write")

    async def handler():
        body = await json_body(request)  # a body that is not JSON is a 415 before the asset is looked up
        asset = await _asset(request, principal)
        spec = _checked(parse(MonitorBody, body).model_dump())
        row = await change(request, catalog_store.add_monitor, request.state.db, principal.workspace_id,
                           asset["id"], spec)
        return json_response(monitor_view(row), 201)

    return await idempotent(request, principal, handler)


async def list_monitors(request: Request):
    """The monitors of an asset."""
    principal = await authenticate(request, "assets:read")
    asset = await _asset(request, principal)
    monitors = await run_db(request, catalog_store.list_monitors, request.state.db, principal.workspace_id,
                            asset["id"])
    items = [monitor_view(m) for m in monitors]
    return json_response({"items": items, "total": len(items)})


async def _monitor(request: Request, principal: Principal) -> dict:
    asset = await _asset(request, principal)
    row = await run_db(request, catalog_store.get_monitor, request.state.db, principal.workspace_id, asset["id"],
                       request.path_params["monitorId"])
    if row is None:
        raise not_found(MONITOR_NOT_FOUND)
    return row


async def get_monitor(request: Request):
    """Get a monitor."""
    principal = await authenticate(request, "assets:read")
    return json_response(monitor_view(await _monitor(request, principal)))


async def patch_monitor(request: Request):
    """Change a monitor's name, severity, params or enabled flag."""
    principal = await authenticate(request, "config:write")
    body = await json_body(request)  # a body that is not JSON is a 415 before the monitor is looked up
    current = await _monitor(request, principal)
    patch = parse(MonitorPatch, body).model_dump(exclude_none=True)
    spec = _checked({k: current[k] for k in ("name", "type", "severity", "enabled", "params")} | patch)
    row = await change(request, catalog_store.update_monitor, request.state.db, principal.workspace_id,
                       current["asset_id"], current["id"], spec)
    return json_response(monitor_view(row))


async def delete_monitor(request: Request):
    """Remove a monitor; its past anomalies stay."""
    principal = await authenticate(request, "config:write")
    current = await _monitor(request, principal)
    await change(request, catalog_store.delete_monitor, request.state.db, principal.workspace_id,
                 current["asset_id"], current["id"])
    return Response(status_code=204)


query_params("GET", "/api/assets", param("datastore", {"type": "integer", "minimum": 0}, "only this datastore's"))

routes = [
    Route("/api/datastores", create_datastore, methods=["POST"]),
    Route("/api/datastores", list_datastores, methods=["GET"]),
    Route("/api/datastores/{id:id64}", get_datastore, methods=["GET"]),
    Route("/api/datastores/{id:id64}", delete_datastore, methods=["DELETE"]),
    Route("/api/datastores/{id:id64}/sync", sync_datastore, methods=["POST"]),
    Route("/api/assets", list_assets, methods=["GET"]),
    Route("/api/assets/{assetId:id64}", get_asset, methods=["GET"]),
    Route("/api/assets/{assetId:id64}/monitors", create_monitor, methods=["POST"]),
    Route("/api/assets/{assetId:id64}/monitors", list_monitors, methods=["GET"]),
    Route("/api/assets/{assetId:id64}/monitors/{monitorId}", get_monitor, methods=["GET"]),
    Route("/api/assets/{assetId:id64}/monitors/{monitorId}", patch_monitor, methods=["PATCH"]),
    Route("/api/assets/{assetId:id64}/monitors/{monitorId}", delete_monitor, methods=["DELETE"]),
]
