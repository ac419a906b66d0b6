"""The API's OpenAPI document, built from the routes and what each family registers: the pydantic
models of JSON bodies, the query parameters, the multipart upload; with each operation's answers
(its success status and schema, and the error body on every documented error status)."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from starlette.routing import Mount, Route

from api.web.response_schemas import answer_schema

BODIES: dict[tuple[str, str], type] = {}
FORMS: dict[tuple[str, str], dict] = {}
QUERIES: dict[tuple[str, str], list[dict]] = {}
QUERY_DEFS: dict[str, dict] = {}  # the schemas query models' fields refer to
STREAMS: set[tuple[str, str]] = set()  # the routes that answer server-sent events
REF = "#/components/schemas/{model}"

ERROR = {
    "type": "object", "required": ["error", "message"], "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, "
                                                   "PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, UNPROCESSABLE_ENTITY, "
                                                   "UNAVAILABLE"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {
            "type": "object", "required": ["path", "message"],
            "properties": {"path": {"type": "array", "items": {"type": ["string", "integer"]}},
                           "message": {"type": "string"}}}},
    },
}
HEALTH = {"type": "object", "required": ["status", "broker", "worker", "projector", "stalled"],
          "properties": {"status": {"enum": ["ok", "unavailable"]}, "broker": {"type": "boolean"},
                         "worker": {"type": "boolean"}, "projector": {"type": "boolean"},
                         "dead_letters": {"type": ["integer", "null"]}, "stalled": {"type": "array"}}}
# The success status of every operation that does not answer 200 (a DELETE of the /api/v1 family
# answers 200 with the envelope, seed 004).
SUCCESS: dict[tuple[str, str], tuple[str, ...]] = {
    **{("post", p): ("201",) for p in (
        "/api/tokens", "/api/workspaces", "/api/v1/connectors", "/api/v1/scans/parallel", "/api/v1/detectors/custom",
        "/api/v1/allowlist", "/api/upload", "/api/mapping/confirm", "/api/policies", "/api/datastores",
        "/api/assets/{assetId}/monitors")},
    **{("delete", p): ("204",) for p in (
        "/api/tokens/{id}", "/api/policies/{id}", "/api/operations/{id}", "/api/datastores/{id}",
        "/api/assets/{assetId}/monitors/{monitorId}")},
    ("post", "/api/datastores/{id}/sync"): ("202",),
    ("post", "/api/scan/run"): ("200", "202"),  # a compliance scan 200 (seed 002), a monitor scan 202 (seed 000)
}
ERRORS = {"400": "The request does not match its schema (body, path id, query parameter)",
          "401": "Missing or invalid API token", "403": "The token's role may not do this",
          "404": "Not found (or another workspace's)", "409": "Conflicts with the resource's state",
          "413": "The body is over the size cap", "415": "The body is not JSON",
          "422": "Valid, but cannot be done as things stand (the Runs API: a query parameter that fails validation)",
          "503": "The broker or blob store did not answer in time; retry after Retry-After"}


def request_body(method: str, path: str):
    """Register the pydantic model of a route's JSON body for the document."""
    def register(model):
        BODIES[(method.lower(), path)] = model
        return model
    return register


def event_stream(method: str, path: str) -> None:
    """Register a route that answers `text/event-stream` (server-sent events) rather than JSON."""
    STREAMS.add((method.lower(), path))


def form_body(method: str, path: str, properties: dict, required: list[str]) -> None:
    """Register a route's multipart/form-data body: its fields' schemas."""
    FORMS[(method.lower(), path)] = {"type": "object", "properties": properties, "required": required}


def query_params(method: str, path: str, *params: dict | type[BaseModel]) -> None:
    """Register a route's query parameters: dicts from `param`, or a pydantic model's fields."""
    found = QUERIES.setdefault((method.lower(), path), [])
    for p in params:
        found += _model_params(p) if isinstance(p, type) else [p]


def param(name: str, schema: dict, description: str = "", repeated: bool = False) -> dict:
    """An optional query parameter; `repeated` ones (`?result=a&result=b`) are arrays of `schema`."""
    out = {"name": name, "in": "query", "required": False,
           "schema": {"type": "array", "items": schema} if repeated else schema}
    if repeated:
        out.update(style="form", explode=True)
    return {**out, "description": description} if description else out


def plain(prop: dict) -> dict:
    """A field's schema for a query string or a form: no title or default, `X | None` as X (absent is None)."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
    options = prop.pop("anyOf", None)
    if options is not None:
        kept = [o for o in options if o != {"type": "null"}]
        prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
    return prop


def _model_params(model: type[BaseModel]) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF)
    QUERY_DEFS.update(schema.get("$defs", {}))
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = plain(prop)
        description = prop.pop("description", "")
        p = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if prop.get("type") == "array":
            p.update(style="form", explode=True)
        out.append({**p, "description": description} if description else p)
    return out


def flat_routes(routes, prefix: str = ""):
    """Every Route with its full path, a Mount's routes under the Mount's path (in match order)."""
    for route in routes:
        if isinstance(route, Mount):
            yield from flat_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route) and route.include_in_schema:
            yield prefix + route.path, route


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _responses(method: str, path: str, public: bool, body: bool, json: bool) -> dict:
    key, writes = (method, path), method in ("post", "put", "patch", "delete")
    if path == "/healthz":
        return {"200": {"description": "Every part is up", "content": _json(HEALTH)},
                "503": {"description": "A part is down or stalled", "content": _json(HEALTH)}}
    if path == "/metrics":
        return {"200": {"description": "Prometheus's text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}
    out: dict[str, Any] = {}
    for status in SUCCESS.get(key, ("200",)):
        out[status] = ({"description": "No content"} if status == "204" else
                       {"description": "Server-sent events", "content": {"text/event-stream": {
                           "schema": {"type": "string"}}}} if key in STREAMS else
                       # a route with none registered: any (tests/unit/test_openapi_answers.py fails on it)
                       {"description": "OK", "content": _json(answer_schema(method, path, status) or {})})
    if public:
        return out
    errors = ["400", "401", "403", "503"]
    if "{" in path or body:
        errors.append("404")
    if writes:
        errors.append("409")
    if body:
        errors.append("413")
    if json:
        errors.append("415")
    if writes or path.startswith("/api/operations"):
        errors.append("422")
    for status in sorted(errors):
        out[status] = {"description": ERRORS[status], "content": _json({"$ref": "#/components/schemas/Error"})}
    return out


def openapi_document(routes) -> dict:
    components: dict[str, dict] = {**QUERY_DEFS, "Error": ERROR}

    def hoisted(schema: dict) -> dict:
        components.update(schema.pop("$defs", {}))
        return schema

    paths: dict[str, dict] = {}
    for full_path, route in flat_routes(routes):
        path = re.sub(r"{(\w+)(:\w+)?}", r"{\1}", full_path)
        for method in sorted(m.lower() for m in (route.methods or set()) - {"HEAD"}):
            public = path in ("/healthz", "/metrics", "/openapi.json")  # no token (docs/decisions.md)
            model, form = BODIES.get((method, path)), FORMS.get((method, path))  # registered without convertors
            op: dict = {"summary": (route.endpoint.__doc__ or route.name or "").strip().split("\n")[0],
                        "responses": _responses(method, path, public, model is not None or form is not None,
                                                model is not None)}
            params = [{"name": p, "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 0} if f"{{{p}:id64}}" in full_path
                       else {"type": "string"}} for p in re.findall(r"{(\w+)}", path)]
            params += [{**p, "schema": hoisted(dict(p["schema"]))} for p in QUERIES.get((method, path), [])]
            if params:
                op["parameters"] = params
            if model is not None:
                op["requestBody"] = {"required": True,
                                     "content": _json(hoisted(model.model_json_schema(ref_template=REF)))}
            elif form is not None:
                op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": form}}}
            if not public:
                op["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "scan-ledger", "version": "0.1.0",
                 "description": "Errors are the Error body; 400 vs 422 and 415: docs/decisions.md."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": components},
        "paths": paths,
    }
