"""Reading and validating request bodies and the Idempotency-Key replay."""
from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api.auth import Principal
from api.errors import ApiError, validation_error
from services import config_store

M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request, allow_empty: bool = False) -> dict:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "Invalid request body", [{"path": [], "message": "Required"}])
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Invalid request body", [{"path": [], "message": "Malformed JSON"}]) from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid request body", [{"path": [], "message": "Expected an object"}])
    return data


def parse(model: type[M], data: dict) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def idempotent(request: Request, principal: Principal, handler) -> Response:
    """Run a POST handler once per Idempotency-Key: a retry gets the first answer back."""
    key = request.headers.get("idempotency-key")
    db = request.app.state.db
    route = request.url.path
    if key:
        stored = config_store.idempotent_answer(db, principal.workspace_id, key, route)
        if stored:
            return Response(stored[1], status_code=stored[0], media_type="application/json")
    response = await handler()
    if key and response.status_code < 500:
        config_store.remember_answer(db, principal.workspace_id, key, route, response.status_code, response.body)
    return response
