"""The answers of POST /api/scan/run (api/scans/run_routes.py): a compliance scan started (seed 002, 200),
a workspace monitor scan started (seed 000, 202)."""
from __future__ import annotations

from api.web.response_schemas import STR, answers, obj

answers("POST", "/api/scan/run", obj({"scan_id": STR, "status": {"const": "running"}}), status="200")
answers("POST", "/api/scan/run", obj({"data": obj({"executionId": STR, "status": {"const": "running"}})}),
        status="202")
