"""Data-quality monitor scans (seed 000): trigger, execution status, per-asset scan status."""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api import monitor_views, queries
from api.auth import Principal, authenticate, require
from api.catalog_routes import container_ref, datastore_ref
from api.errors import not_found
from api.responses import json_response
from api.scan_commands import start_scan
from services.domain import contracts as c
from services.domain.envelope import utcnow
from services.domain.kinds import MONITOR
from services.stores import catalog_store
from services.stores.config_store import new_id

MONITOR_FIELDS = ("id", "name", "type", "severity", "params")


def monitor_scan_request(db, principal: Principal) -> dict:
    """Snapshot every enabled monitor of the workspace, grouped by asset: one target per asset."""
    monitors = catalog_store.list_monitors(db, principal.workspace_id, enabled_only=True)
    assets = {a["id"]: a for a in catalog_store.list_assets(db, principal.workspace_id)}
    by_asset: dict[int, list[dict]] = {}
    for m in monitors:
        if m["asset_id"] in assets:  # monitors of a removed datastore's assets do not run
            by_asset.setdefault(m["asset_id"], []).append({k: m[k] for k in MONITOR_FIELDS})
    targets = [{"container": container_ref(assets[aid]),
                "datastore": datastore_ref({"id": assets[aid]["datastore_id"], "name": assets[aid]["datastore_name"],
                                            "type": assets[aid]["datastore_type"],
                                            "resolved_path": assets[aid]["resolved_path"]}),
                "monitors": ms} for aid, ms in sorted(by_asset.items())]
    stores = {t["datastore"]["id"]: t["datastore"] for t in targets}
    return c.MonitorScanRequest(scan_id=new_id(), kind=MONITOR.name, workspace_id=principal.workspace_id,
                                requested_by=principal.user, requested_at=utcnow(), targets=targets,
                                # the run's datastore in the Activity list, when it covers just one
                                datastore=next(iter(stores.values())) if len(stores) == 1 else None,
                                ).model_dump(exclude_unset=True)


async def run_monitor_scan(request: Request, principal: Principal):
    """Scan every enabled monitor of the caller's workspace (202 with the executionId)."""
    require(principal, "scan:trigger")
    scan_request = monitor_scan_request(request.app.state.db, principal)
    await start_scan(request, scan_request)
    return json_response({"data": {"executionId": scan_request["scan_id"], "status": "running"}}, 202)


async def scan_status(request: Request):
    """The progress of a scan triggered by POST /api/scan/run: running, finished or failed."""
    principal = authenticate(request, "scan:trigger")
    db = request.app.state.db
    execution_id = request.path_params["executionId"]
    row, pending = queries.scan_or_pending(db, principal.workspace_id, execution_id)
    if row is not None:
        return json_response({"data": monitor_views.execution_view(row)})
    if pending is None:
        raise not_found("Scan execution not found")
    return json_response({"data": monitor_views.pending_execution_view(pending)})


async def assets_scan_status(request: Request):
    """The current and last completed monitor run of every asset, for the Monitor Dashboard."""
    principal = authenticate(request, "assets:read")
    db = request.app.state.db
    assets = catalog_store.list_assets(db, principal.workspace_id)
    return json_response({"data": monitor_views.assets_status(db, assets)})


routes = [
    Route("/api/scan/status/{executionId}", scan_status, methods=["GET"]),
    Route("/api/assets/scan-status", assets_scan_status, methods=["GET"]),
]
