"""Compliance scans (seeds 001, 002): uploads, mappings and policies, then scans and their violations."""
from __future__ import annotations

from starlette.routing import Router

from api.compliance import config_routes, routes, schemas  # schemas: what each route answers, for /openapi.json

# in this order: the first match wins
router = Router(routes=[*config_routes.routes, *routes.routes])

__all__ = ["router", "schemas"]
