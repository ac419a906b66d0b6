"""What every scan family shares: starting a scan and waiting for the ledger (commands), the request
snapshots a RunScan carries (snapshots), read-model helpers (reads), how CSV files are written
(dialects), and POST /api/scan/run, the one path that starts two kinds (run_routes)."""
from __future__ import annotations

from starlette.routing import Router

from api.scans import run_routes, schemas  # schemas: what each route answers, for /openapi.json

# in this order: the first match wins
router = Router(routes=[*run_routes.routes])

__all__ = ["router", "schemas"]
