"""Audit: the ledger of one scan, event by event, whatever its kind."""
from __future__ import annotations

from starlette.routing import Router

from api.audit import routes

router = Router(routes=routes.routes)
