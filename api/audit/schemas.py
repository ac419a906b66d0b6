"""The answer of GET /api/scans/{id}/history: a scan's ledger events, a cursor page at a time, as
api/audit/queries.py item_view builds them."""
from __future__ import annotations

from api.web.response_schemas import PAGINATION, STR, TIME, answers, array, nullable, obj

EVENT = obj({
    "id": STR, "type": STR, "time": TIME,
    "position": obj({"topic": STR, "partition": {"type": "integer"}, "offset": {"type": "integer"}, "logged_at": TIME}),
    "actor": nullable(obj({"token_id": STR, "role": STR, "worker_id": STR}, optional=("worker_id",))),
    "source": STR, "causation_id": nullable(STR), "data": {"type": ["object", "null"]}})

answers("GET", "/api/scans/{id}/history", obj({"scan_id": STR, "items": array(EVENT), "pagination": PAGINATION}))
