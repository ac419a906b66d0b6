"""The API's OpenAPI document, built from the routes and the pydantic request models."""
from __future__ import annotations

import re

from starlette.routing import Route

BODIES: dict[tuple[str, str], type] = {}


def request_body(method: str, path: str):
    """Register the pydantic model of a route's JSON body for the document."""
    def register(model):
        BODIES[(method.lower(), path)] = model
        return model
    return register


def openapi_document(routes) -> dict:
    paths: dict[str, dict] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r"{(\w+)(:\w+)?}", r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op: dict = {"summary": (route.endpoint.__doc__ or route.name or "").strip().split("\n")[0],
                        "responses": {"200": {"description": "OK"}}}
            params = re.findall(r"{(\w+)}", path)
            if params:
                op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                    for p in params]
            model = BODIES.get((method.lower(), route.path))
            if model is not None:
                op["requestBody"] = {"content": {"application/json": {"schema": model.model_json_schema()}}}
            if path != "/healthz" and path != "/openapi.json":
                op["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "scan-ledger", "version": "0.1.0"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
