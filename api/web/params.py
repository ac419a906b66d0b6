"""The one way the API reads an integer from a path or a query string, and a page's limit and cursor.

ASCII digits only (str.isdigit() also takes "²" and "٣", and int() takes "٣" as 3), no sign,
blanks, underscores or exponents, and within SQLite's signed 64-bit range: anything else is
not an id (the route's 400 or 404), never an OverflowError (500) or another resource.
"""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated

import orjson
from pydantic import BeforeValidator
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request

from api.web.errors import ApiError

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
# Pages are bounded so that (page - 1) * size still fits in 64 bits for any size up to 1000.
MAX_PAGE = 1_000_000_000
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # explicit ASCII class: \d would take every Unicode digit


def parse_int(raw: str | None) -> int | None:
    """The integer written in ASCII digits (an optional leading '-'), within 64 bits; else None."""
    if not isinstance(raw, str) or not _INTEGER.fullmatch(raw):
        return None
    value = int(raw)
    return value if INT64_MIN <= value <= INT64_MAX else None


def _query_int(value):
    if isinstance(value, str):
        parsed = parse_int(value)
        if parsed is None:
            raise ValueError("Expected an integer (ASCII digits, within 64 bits)")
        return parsed
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("Expected an integer within 64 bits")
    return value


# For pydantic models of query strings: `page: QueryInt = Field(1, ge=1, le=MAX_PAGE)`.
QueryInt = Annotated[int, BeforeValidator(_query_int)]


class Int64Convertor(Convertor[int]):
    """`{id:id64}` in a route: ASCII digits, at most 19 of them, as an int.

    Anything else (a word, "²", a 20-digit number) matches no route, so it is Starlette's
    404 and cannot name another route's path (`/api/assets/scan-status` is not an asset).
    19 digits may still pass 2^63 - 1: `path_int` makes that a 404 too.
    """
    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id64", Int64Convertor())


def path_int(request: Request, name: str, missing: ApiError) -> int:
    """An `{name:id64}` path parameter; past 64 bits it can name no row: `missing`."""
    value = request.path_params[name]
    if value > INT64_MAX:
        raise missing
    return value


def path_id(request: Request, name: str, invalid: ApiError, missing: ApiError | None = None) -> int:
    """A non-negative integer id from the path. Not an integer: `invalid`; an integer no row can
    have (beyond 64 bits): `missing` (by default `invalid`), as for an unknown id."""
    raw = request.path_params[name]
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit():
        raise invalid
    value = parse_int(raw)
    if value is None:
        raise missing or invalid
    return value


def query_id(request: Request, name: str) -> int | None:
    """An optional non-negative integer id from the query string; present but not one: 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = parse_int(raw) if raw.isascii() and raw.isdigit() else None
    if value is None:
        raise ApiError(400, "Invalid query parameters", [{"path": [name], "message": "Expected an integer"}])
    return value


# --- keyset pages: a limit, and an opaque cursor that is the sort key of the last item shown ---

def encode_cursor(*key: str | int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def page_limit(request: Request, default: int, most: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(400, "Invalid query parameters", [{"path": ["limit"], "message": f"An integer 1-{most}"}])
    return int(raw)


def page_cursor(request: Request, size: int) -> list | None:
    """The key a `cursor` query parameter holds (None without one); a 400 for one this API did not give."""
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != size or not all(type(k) in (str, int) for k in key):
        raise ApiError(400, "Invalid query parameters", [{"path": ["cursor"], "message": "not a cursor this API gave"}])
    return key


def time_param(request: Request, name: str) -> datetime | None:
    """A query parameter that is an ISO 8601 time with its zone (a 400 naming it otherwise); None if absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "Invalid query parameters", [{"path": [name], "message": "An ISO 8601 time"}]) from None
    if moment.tzinfo is None:
        raise ApiError(400, "Invalid query parameters", [{"path": [name], "message": "With a time zone"}])
    return moment
