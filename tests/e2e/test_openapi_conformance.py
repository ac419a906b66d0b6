"""The OpenAPI document against the running system (issue 25): schemathesis generates requests for
every operation of /openapi.json (path, query and body from their schemas) and checks each answer:
no 5xx, a status the document lists for the operation, the content type it lists and a body that
matches that status's schema (the error body on every error). Few examples per operation, so it
stays a CI step of a minute or two; the broad no-5xx sweep is tests/security/test_bad_input.py."""
from __future__ import annotations

import re
import uuid

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 6  # per operation


@pytest.fixture(scope="module")
def tenant_token(system):
    """The Admin token of a fresh workspace: generated writes touch no other module's data."""
    with system.client() as admin:
        r = admin.post("/api/workspaces", json={"name": f"conformance {uuid.uuid4().hex[:6]}"})
        assert r.status_code == 201, r.text
        return r.json()["admin_token"]["token"]


def test_the_document_lists_query_parameters_the_upload_and_answers(system):
    with system.client() as api:
        doc = api.get("/openapi.json").json()
    paths = doc["paths"]
    assert {p["name"] for p in paths["/api/operations"]["get"]["parameters"]} >= {
        "operation_type", "result", "datastore", "sort_created", "page", "size"}
    assert {p["name"] for p in paths["/api/v1/scans/{id}/findings"]["get"]["parameters"]} >= {
        "id", "detector", "min_confidence", "limit", "cursor"}
    upload = paths["/api/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["file"] and upload["properties"]["file"]["format"] == "binary"
    for path, ops in paths.items():
        for method, op in ops.items():
            answers = op["responses"]
            assert any(s.startswith("2") for s in answers), (method, path)
            if path not in ("/healthz", "/metrics", "/openapi.json"):  # the public ones
                assert answers["401"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}, (method, path)
            if "requestBody" in op and "application/json" in op["requestBody"]["content"]:
                assert "415" in answers, (method, path)
    assert paths["/api/scan/run"]["post"]["responses"]["400"]
    assert "422" in paths["/api/operations"]["get"]["responses"]


def test_the_docs_page_serves_swagger_ui_from_this_server(system):
    page = httpx.get(f"{system.url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text and "https://" not in page.text  # no CDN
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        r = httpx.get(f"{system.url}{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000, asset
    assert "/docs" not in httpx.get(f"{system.url}/openapi.json").json()["paths"]


def test_every_operation_answers_as_the_document_says(system, tenant_token):
    schema = schemathesis.openapi.from_url(f"{system.url}/openapi.json")
    auth = {"Authorization": f"Bearer {tenant_token}"}
    failures, seen = [], {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 50

    def checked(operation):
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(headers=auth)
            seen.setdefault(f"{operation.method.upper()} {operation.path}", set()).add(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS, headers=auth)
            except (AssertionError, BaseExceptionGroup) as exc:  # a check's failure, or a group of them
                failures.append((case.method, case.formatted_path, case.query, str(exc)[:600]))
        return check

    for operation in operations:
        checked(operation)()
    assert len(seen) == len(operations)
    statuses = set().union(*seen.values())
    assert {200, 201, 400, 404} <= statuses, seen  # answers of both kinds were checked, not only refusals
    print("\n".join(f"{op}: {sorted(codes)}" for op, codes in sorted(seen.items())))
    assert not failures, "\n\n".join(map(str, failures[:20]))


def test_every_operation_behind_a_token_answers_401_with_the_documented_error_body(system):
    """Every documented status has its schema; the one every protected operation can be made to give."""
    doc = httpx.get(f"{system.url}/openapi.json").json()
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "security" not in op:
                continue
            r = httpx.request(method.upper(), system.url + re.sub(r"{\w+}", "1", path),
                              headers={"Authorization": "Bearer nope"})
            assert r.status_code == 401, (method, path, r.status_code)
            assert "401" in op["responses"], (method, path)
            jsonschema.validate(r.json(), doc["components"]["schemas"]["Error"])
            checked += 1
    assert checked >= 50
