"""Every operation of the OpenAPI document says what its success answer holds: a schema with its required
fields (a list's items, an /api/v1 envelope's data, as much), never a bare object, so a new route cannot go
undocumented; and the document is valid JSON Schema 2020-12 wherever it holds one."""
from __future__ import annotations

import jsonschema
from starlette.routing import Route

from api.app import create_app
from api.web.openapi import openapi_document


def _said(schema: dict, inner: tuple[str, ...] = ("data", "items")) -> bool:
    """Whether a schema says what the body holds: an object's required fields (and an envelope's `data` and a
    list's `items` said too), an array's items, a type, a const or an enum."""
    if "anyOf" in schema:
        return all(_said(s, inner) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return "items" in schema and _said(schema["items"], inner)
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        return bool(schema.get("required")) and all(_said(properties[k], ("items",)) for k in inner
                                                     if k in properties)
    return bool(schema)


async def _endpoint(request):
    """An endpoint no family documents."""


def test_every_success_answer_has_a_schema_that_names_its_fields():
    doc = openapi_document(create_app().routes)
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if not status.startswith("2") or status == "204":
                    continue
                [(media, content)] = answer["content"].items()
                schema = content["schema"]
                assert media == "text/plain" or _said(schema), (method, path, status, schema)
                checked += 1
    assert checked >= 50


def test_a_route_no_family_documents_has_a_schema_that_says_nothing():
    [(method, op)] = openapi_document([Route("/api/new", _endpoint)])["paths"]["/api/new"].items()
    assert method == "get" and not _said(op["responses"]["200"]["content"]["application/json"]["schema"])


def test_the_answers_are_valid_json_schema_and_open_to_added_fields():
    doc = openapi_document(create_app().routes)
    jsonschema.Draft202012Validator.check_schema({**doc, "$schema": "https://json-schema.org/draft/2020-12/schema"})
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                for content in answer.get("content", {}).values():
                    jsonschema.Draft202012Validator.check_schema(content["schema"])
                    if status.startswith("2"):
                        assert not _closed(content["schema"]), (method, path)
    assert _closed(doc["components"]["schemas"]["Error"])  # the one closed object: the error body


def _closed(schema) -> bool:
    """Whether any object in the schema refuses added fields."""
    if isinstance(schema, list):
        return any(_closed(s) for s in schema)
    if not isinstance(schema, dict):
        return False
    return schema.get("additionalProperties") is False or any(_closed(v) for v in schema.values())
