"""The API's OpenAPI document, built from the routes and the pydantic request models."""
from __future__ import annotations

import re

from starlette.routing import Mount, Route

BODIES: dict[tuple[str, str], type] = {}


def request_body(method: str, path: str):
    """Register the pydantic model of a route's JSON body for the document."""
    def register(model):
        BODIES[(method.lower(), path)] = model
        return model
    return register


def flat_routes(routes, prefix: str = ""):
    """Every Route with its full path, a Mount's routes under the Mount's path (in match order)."""
    for route in routes:
        if isinstance(route, Mount):
            yield from flat_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def openapi_document(routes) -> dict:
    paths: dict[str, dict] = {}
    for full_path, route in flat_routes(routes):
        path = re.sub(r"{(\w+)(:\w+)?}", r"{\1}", full_path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op: dict = {"summary": (route.endpoint.__doc__ or route.name or "").strip().split("\n")[0],
                        "responses": {"200": {"description": "OK"}}}
            params = re.findall(r"{(\w+)}", path)
            if params:
                op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                    for p in params]
            model = BODIES.get((method.lower(), path))  # registered without convertors
            if model is not None:
                op["requestBody"] = {"content": {"application/json": {"schema": model.model_json_schema()}}}
            if path not in ("/healthz", "/metrics", "/openapi.json"):  # no token (docs/decisions.md)
                op["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "scan-ledger", "version": "0.1.0"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
