"""Data-quality monitor scans (seed 000): datastores, assets and monitors, then scans and their status."""
from __future__ import annotations

from starlette.routing import Router

from api.monitors import catalog_routes, routes, schemas  # schemas: what each route answers, for /openapi.json

# in this order: the first match wins
router = Router(routes=[*routes.routes, *catalog_routes.routes])

__all__ = ["router", "schemas"]
