"""Sensitive-data scans (seed 004): connectors, detectors, scans and their findings, BYOC workers."""
from __future__ import annotations

from starlette.routing import Router

# schemas: what each route answers, for /openapi.json
from api.sensitive import byoc_routes, connector_routes, detector_routes, routes, schemas

# in this order: the first match wins
router = Router(routes=[*connector_routes.routes, *routes.routes, *byoc_routes.routes, *detector_routes.routes])

__all__ = ["router", "schemas"]
