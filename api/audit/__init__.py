"""Audit: the ledger of one scan, event by event, whatever its kind."""
from __future__ import annotations

from starlette.routing import Router

from api.audit import routes, schemas  # schemas: what each route answers, for /openapi.json

router = Router(routes=routes.routes)

__all__ = ["router", "schemas"]
