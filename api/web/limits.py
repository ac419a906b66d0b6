"""Input limits: request body size (413) and the size of what a body may define (400).

The body cap is an ASGI middleware, so an oversized request is refused from its
Content-Length before it is read, and a body sent without one (chunked) is cut off as soon
as it passes the cap. Field limits are checked on the parsed policy or monitor, with the
path of each offending value in `details`; they are API policy, not engine rules, so
policies already on the ledger keep running.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.web.errors import ApiError, body
from api.web.responses import json_response
from services.domain.regex import re2_error

MAX_RULES = 1000           # rules per policy
MAX_TEXT = 1000            # characters of a name, an id, a field name, a value, a regex
MAX_DESCRIPTION = 10_000   # characters of a policy's description
MAX_ITEMS = 10_000         # items of a list in a rule's or a monitor's params (values, fields)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body too large (limit {limit} bytes)")


class BodyLimit:
    """Refuse request bodies over `default` bytes (`per_path` overrides, e.g. uploads) with 413."""

    def __init__(self, app: ASGIApp, default: int, per_path: dict[str, int] | None = None):
        self.app, self.default, self.per_path = app, default, per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.default)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():  # bytes: ASCII digits only
                await _answer(scope, receive, send, ApiError(400, "Invalid Content-Length header"))
                return
            if int(declared) > limit:
                await _answer(scope, receive, send, too_large(limit))
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit)  # in the endpoint: the app's ApiError handler answers
            return message

        await self.app(scope, counted, send)


async def _answer(scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
    response = json_response(body(exc), exc.status)
    response.headers["Connection"] = "close"  # the unread body is not drained
    await response(scope, receive, send)


def oversized(value: Any, path: list, max_text: int = MAX_TEXT) -> Iterator[dict]:
    """Details for every string longer than max_text and list longer than MAX_ITEMS in value."""
    if isinstance(value, str):
        if len(value) > max_text:
            yield {"path": path, "message": f"At most {max_text} characters"}
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            yield {"path": path, "message": f"At most {MAX_ITEMS} items"}
        else:
            for i, item in enumerate(value):
                yield from oversized(item, [*path, i], max_text)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and len(key) > max_text:
                yield {"path": path, "message": f"Keys of at most {max_text} characters"}
            yield from oversized(item, [*path, key], max_text)


def rule_problems(rule: dict, index: int) -> list[dict]:
    """What the API refuses in a rule that parsed: oversized fields, a regex RE2 cannot run."""
    path = ["rules", index]
    problems = list(oversized(rule, path))
    regex = rule.get("params", {}).get("regex") if rule.get("type") == "pattern" else None
    if isinstance(regex, str) and not problems:
        reason = re2_error(regex)
        if reason is not None:
            problems.append({"path": [*path, "params", "regex"],
                             "message": f"regular expression not supported by the scan engine (RE2): {reason}"})
    return problems


def monitor_problems(spec: dict) -> list[dict]:
    """The same for a monitor (its pattern runs anchored, as services/domain/monitors.py does)."""
    problems = list(oversized(spec.get("params") or {}, ["params"]))
    regex = (spec.get("params") or {}).get("regex") if spec.get("type") == "pattern" else None
    if isinstance(regex, str) and not problems:
        reason = re2_error(regex) or re2_error(f"^(?:{regex})$")
        if reason is not None:
            problems.append({"path": ["params", "regex"],
                             "message": f"regular expression not supported by the scan engine (RE2): {reason}"})
    return problems
