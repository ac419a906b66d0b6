"""The Activity list (seed 003): every run of any kind, listed, inspected, aborted, resumed, rerun, deleted."""
from __future__ import annotations

from starlette.routing import Router

from api.operations import events, routes, schemas  # schemas: what each route answers, for /openapi.json

# in this order: the first match wins
router = Router(routes=[*routes.routes, *events.routes])

__all__ = ["router", "schemas"]
