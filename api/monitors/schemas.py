"""The answers of the catalog and monitor scans (seed 000): datastores, assets, monitors, a sync, an
execution and the per-asset scan status, as api/monitors/views.py and catalog_routes.py build them."""
from __future__ import annotations

from api.web.response_schemas import ANY_OBJ, BOOL, INT, STR, TIME, answers, array, listing, nullable, obj

DATASTORE = obj({"id": INT, "name": STR, "type": {"enum": ["local_dir", "sqlite"]}, "path": STR, "created_at": TIME,
                 "dialect": ANY_OBJ}, optional=("dialect",))
ASSET = obj({"id": INT, "name": STR, "container_type": STR, "datastore": obj({"id": INT, "name": STR}),
             "columns": nullable({"type": "array"}), "row_count": nullable(INT), "synced_at": nullable(TIME)})
MONITOR = obj({"id": STR, "asset_id": INT, "name": STR, "type": STR, "severity": STR, "enabled": BOOL,
               "params": ANY_OBJ, "created_at": TIME, "updated_at": TIME})
SYNC = obj({"operation_id": INT, "scan_id": STR, "status": {"const": "running"}, "assets": array(ASSET)})
EXECUTION = obj({"data": obj({"executionId": STR, "status": {"enum": ["running", "finished", "failed"]},
                              "startedAt": TIME, "finishedAt": nullable(TIME)})})
PROGRESS = obj({"total": INT, "completed": INT, "running": INT, "failed": INT, "pending": INT})
RUN = obj({"jobId": STR, "status": {"enum": ["running", "completed", "failed", "partial_failure"]},
           "startedAt": nullable(TIME), "finishedAt": nullable(TIME), "progress": PROGRESS,
           "monitors": array(obj({"monitorId": STR, "monitorName": STR, "stage": STR, "durationMs": nullable(INT),
                                  "error": nullable(STR)}))})
ASSET_STATUS = obj({"assetId": STR, "assetName": STR,
                    "status": {"enum": ["idle", "running", "completed", "failed", "partial_failure"]},
                    "lastCompletedAt": nullable(TIME), "currentRun": nullable(RUN), "lastRun": nullable(RUN)})

answers("POST", "/api/datastores", DATASTORE)
answers("GET", "/api/datastores", listing(DATASTORE))
answers("GET", "/api/datastores/{id}", DATASTORE)
answers("POST", "/api/datastores/{id}/sync", SYNC)
answers("GET", "/api/assets", listing(ASSET))
answers("GET", "/api/assets/{assetId}", ASSET)
for method, path in (("POST", "/api/assets/{assetId}/monitors"), ("GET", "/api/assets/{assetId}/monitors/{monitorId}"),
                     ("PATCH", "/api/assets/{assetId}/monitors/{monitorId}")):
    answers(method, path, MONITOR)
answers("GET", "/api/assets/{assetId}/monitors", listing(MONITOR))
answers("GET", "/api/scan/status/{executionId}", EXECUTION)
answers("GET", "/api/assets/scan-status", obj({"data": array(ASSET_STATUS)}))
