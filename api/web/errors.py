"""The documented error body: {"error": CODE, "message": text[, "details": [...]]}."""
from __future__ import annotations

import logging
import math

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api.web.responses import json_response

log = logging.getLogger("scanledger.api")

CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
         409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 422: "UNPROCESSABLE_ENTITY",
         500: "INTERNAL_ERROR", 503: "UNAVAILABLE"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: list | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details
        self.code = code or CODES.get(status, "ERROR")
        self.headers = headers or {}


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def details_from(exc: ValidationError, prefix: tuple = ()) -> list[dict]:
    """pydantic errors as [{path, message}], with "Required" for a missing field (seed 002). A tagged
    union's missing or unknown tag names the tag's own field (`credentials.source`), not pydantic's
    wording about discriminators."""
    return [_detail(err, prefix) for err in exc.errors()]


def _detail(err: dict, prefix: tuple) -> dict:
    path, kind = [*prefix, *err["loc"]], err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("union_tag_not_found", "union_tag_invalid") and isinstance(ctx.get("discriminator"), str):
        tag = ctx["discriminator"].strip("'")
        if kind == "union_tag_not_found":
            return {"path": [*path, tag], "message": "Required"}
        return {"path": [*path, tag], "message": f"Expected one of {ctx.get('expected_tags')}"}
    return {"path": path, "message": "Required" if kind == "missing" else err["msg"]}


def validation_error(exc: ValidationError, message: str = "Invalid request body", prefix: tuple = ()) -> ApiError:
    return ApiError(400, message, details_from(exc, prefix))


def body(exc: ApiError) -> dict:
    out = {"error": exc.code, "message": exc.message}
    if exc.details is not None:
        out["details"] = exc.details
    return out


def unavailable(message: str, retry_after_s: float) -> ApiError:
    """503 with Retry-After: the request changed nothing and may be sent again."""
    return ApiError(503, message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


async def handle_api_error(_request: Request, exc: ApiError) -> Response:
    response = json_response(body(exc), exc.status)
    response.headers.update(exc.headers)
    return response


async def handle_http_exception(_request: Request, exc) -> Response:
    return json_response({"error": CODES.get(exc.status_code, "ERROR"), "message": exc.detail}, exc.status_code)


BLOB_RETRY_AFTER_S = 5


async def handle_blob_unavailable(request: Request, exc: Exception) -> Response:
    """The blob store (S3) did not answer: a 503 the client may retry; the log says which store and why."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return await handle_api_error(request, unavailable("The blob store is not answering; try again",
                                                       BLOB_RETRY_AFTER_S))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Any exception no route turned into an answer: logged here, a 500 with the error body there.

    A last resort (every ordinary bad input has its 4xx): the client sees no traceback and
    nothing of the exception's text, which may name paths or SQL.
    """
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response({"error": "INTERNAL_ERROR", "message": "Internal server error"}, 500)
