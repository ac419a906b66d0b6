"""The snapshot a scan carries: every scan request the API builds, one builder per way to start a run.

A scan runs on what its request resolved when it was made (policy and rules, upload, mapping,
monitors, datastore and containers), never on what the config says later. The routers that
start runs (the POST /api/scan/run dispatch, a datastore's sync, a rerun) build them here, so
no router imports another for a snapshot's shape.
"""
from __future__ import annotations

import orjson
from pydantic import BaseModel, Field

from api.web.auth import Principal
from api.web.errors import ApiError, not_found
from api.web.openapi import request_body
from services.adapters.db import snapshot
from services.domain import contracts as c
from services.domain.envelope import new_id, utcnow
from services.domain.kinds import CATALOG, COMPLIANCE, MONITOR, kind_of
from services.domain.policy import missing_columns
from services.domain.rules import parse_rule
from services.stores import catalog_store, config_log, config_store

MONITOR_FIELDS = ("id", "name", "type", "severity", "params")


# --- compliance scans (seed 002) ---

@request_body("POST", "/api/scan/run")
class ScanRunBody(BaseModel):
    policy_id: str = Field(min_length=1)
    upload_id: str = Field(min_length=1)
    mapping_id: str = Field(min_length=1)
    audit_id: str | None = Field(None, max_length=1000)
    audit_name: str | None = Field(None, max_length=1000)


def compliance_request(db, principal: Principal, body: ScanRunBody) -> dict:
    """Resolve everything the scan will use into the snapshot it carries (404s as seed 002)."""
    with snapshot(db):  # the rows and their versions as of one commit
        return _compliance_request(db, principal, body)


def _compliance_request(db, principal: Principal, body: ScanRunBody) -> dict:
    ws = principal.workspace_id
    mapping = config_store.get_mapping(db, ws, body.mapping_id)
    if mapping is None:
        raise not_found("Mapping not found. Confirm mapping first.")
    upload = config_store.get_upload(db, ws, body.upload_id)
    if upload is None:
        raise not_found("Upload not found. Upload data first.")
    policy = config_store.get_policy(db, ws, body.policy_id)
    rules = [r for r in (policy or {}).get("rules", []) if r.get("active", True)]
    if not rules:
        raise not_found("No rules found for this policy.")
    if mapping["upload_id"] != upload["id"]:
        raise ApiError(400, "Invalid request body",
                       [{"path": ["mapping_id"], "message": "Mapping was confirmed for another upload"}])
    details = [{"path": ["policy_id"], "message": f"Rule '{r['id']}' uses field '{f}', which the upload lacks"}
               for r in rules for f in missing_columns(parse_rule(r), mapping["mapping"], upload["columns"])]
    if details:
        raise ApiError(400, "Invalid request body", details)
    return c.ComplianceScanRequest(
        scan_id=new_id(),
        kind=COMPLIANCE.name,
        workspace_id=ws,
        requested_by=principal.user,
        requested_at=utcnow(),
        policy=c.PolicySnapshot(id=policy["id"], name=policy["name"], rules=rules),
        upload=c.UploadSnapshot(id=upload["id"], filename=upload["filename"], blob=upload["blob"],
                                record_count=upload["record_count"], columns=upload["columns"],
                                pii_findings=upload["pii_findings"]),
        mapping=c.MappingSnapshot(id=mapping["id"], mapping=mapping["mapping"],
                                  temporal_scale=mapping["temporal_scale"]),
        audit_id=body.audit_id,
        audit_name=body.audit_name,
        rerun_of=None,
        config_versions=config_log.versions(db, [("policies", policy["id"]), ("uploads", upload["id"]),
                                                 ("mappings", mapping["id"])]),
    ).model_dump(exclude_unset=True)


# --- the catalog's shapes, shared by monitor scans and syncs ---

def datastore_ref(store: dict) -> dict:
    """A datastore in a scan's snapshot: its path as registered (what the views show) and as the server
    resolved it (what the evaluators read; never shown, as a connector's resolved_path)."""
    return {"id": store["id"], "name": store["name"], "type": store["type"], "path": store["path"],
            "resolved_path": store["resolved_path"], **({"dialect": store["dialect"]} if store.get("dialect") else {})}


def _store_of(asset: dict) -> dict:
    dialect = asset.get("datastore_dialect")
    return {"id": asset["datastore_id"], "name": asset["datastore_name"], "type": asset["datastore_type"],
            "path": asset["datastore_path"], "resolved_path": asset["resolved_path"],
            "dialect": orjson.loads(dialect) if dialect else None}


def container_ref(asset: dict) -> dict:
    return {"id": asset["id"], "name": asset["name"], "container_type": asset["container_type"],
            "datastore_id": asset["datastore_id"]}


# --- monitor scans (seed 000) ---

def monitor_scan_request(db, principal: Principal) -> dict:
    """Snapshot every enabled monitor of the workspace, grouped by asset: one target per asset."""
    with snapshot(db):  # the rows and their versions as of one commit
        monitors = catalog_store.list_monitors(db, principal.workspace_id, enabled_only=True)
        assets = {a["id"]: a for a in catalog_store.list_assets(db, principal.workspace_id)}
        by_asset: dict[int, list[dict]] = {}
        for m in monitors:
            if m["asset_id"] in assets:  # monitors of a removed datastore's assets do not run
                by_asset.setdefault(m["asset_id"], []).append({k: m[k] for k in MONITOR_FIELDS})
        versions = config_log.versions(db, [("monitors", m["id"]) for ms in by_asset.values() for m in ms]
                                       + target_refs(assets[aid] for aid in sorted(by_asset)))
    targets = [{"container": container_ref(assets[aid]), "datastore": datastore_ref(_store_of(assets[aid])),
                "monitors": ms} for aid, ms in sorted(by_asset.items())]
    stores = {t["datastore"]["id"]: t["datastore"] for t in targets}
    return c.MonitorScanRequest(scan_id=new_id(), kind=MONITOR.name, workspace_id=principal.workspace_id,
                                requested_by=principal.user, requested_at=utcnow(), targets=targets,
                                # the run's datastore in the Activity list, when it covers just one
                                datastore=next(iter(stores.values())) if len(stores) == 1 else None,
                                config_versions=versions).model_dump(exclude_unset=True)


# --- catalog syncs ---

def sync_request(principal: Principal, store: dict, assets: list[dict], versions: list[dict]) -> dict:
    """A sync of `store` profiling `assets` (the containers found there now; `versions`: of those and the store)."""
    targets = [{"container": container_ref(a), "datastore": datastore_ref(store), "monitors": []} for a in assets]
    return c.CatalogSyncRequest(scan_id=new_id(), kind=CATALOG.name, workspace_id=principal.workspace_id,
                                requested_by=principal.user, requested_at=utcnow(), targets=targets,
                                datastore=datastore_ref(store), config_versions=versions,
                                ).model_dump(exclude_unset=True)


def target_refs(assets) -> list[tuple[str, object]]:
    """The config rows behind targets: each asset and its datastore (services.stores.config_log.versions)."""
    refs: list[tuple[str, object]] = []
    for a in assets:
        refs += [("assets", a["id"]), ("datastores", a["datastore_id"])]
    return refs


# --- reruns (seed 003) ---

def rerun_request(principal: Principal, recorded: str, rerun_of: str) -> dict:
    """A new run of the snapshot a finished run used (`recorded`, as scan.requested recorded it),
    with a scan id of its kind's shape (a sensitive-data scan's is read at /api/v1/scans/{id})."""
    previous = orjson.loads(recorded)
    scan_request = {**previous, "scan_id": f"{kind_of(previous).scan_id_prefix}{new_id()}",
                    "requested_by": principal.user, "requested_at": utcnow(), "rerun_of": rerun_of}
    scan_request.pop("operation_id", None)
    return scan_request
