"""HTTP conventions (issue 25): 415 for a body that is not JSON where JSON is required, and the one
rule for 400 vs 422 (docs/decisions.md, "400, 415 and 422"), on the real running system."""
from __future__ import annotations

import re

import pytest

from api.app import ROUTERS
from api.web.openapi import BODIES, flat_routes
from services.adapters.db import connect
from services.domain.envelope import utcnow
from services.stores import byoc_store
from services.stores.byoc_store import new_worker_token

WORKER_SCAN = "scan-http-conventions"


def json_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app that reads a JSON body: those registered with one."""
    found = []
    for full_path, route in flat_routes([r for router in ROUTERS for r in router.routes]):
        path = re.sub(r"{(\w+)(:\w+)?}", r"{\1}", full_path)
        found += [(m, path) for m in sorted(route.methods or ()) if (m.lower(), path) in BODIES]
    return found


@pytest.fixture(scope="module")
def worker_token(system):
    """A BYOC worker token (the report route's only caller) for a scan of its own."""
    token = new_worker_token()
    conn = connect(system.db_url)
    try:
        byoc_store.add_worker_token(conn, token, "default", WORKER_SCAN, utcnow())
    finally:
        conn.close()
    return token


def _send(system, worker_token, method, path, **kwargs):
    """As the Admin, path parameters "1"; the report route as its scan's worker."""
    if path.endswith("/report"):
        with system.client(token=worker_token) as worker:
            return worker.request(method, path.replace("{id}", WORKER_SCAN), **kwargs)
    with system.client() as admin:
        return admin.request(method, re.sub(r"{\w+}", "1", path), **kwargs)


def test_the_json_routes_are_found_from_the_apps_routes():
    routes = json_routes()
    assert len(routes) == len(BODIES) >= 15, (routes, sorted(BODIES))
    assert ("POST", "/api/scan/run") in routes and ("PATCH", "/api/violations/{id}") in routes


@pytest.mark.parametrize(("method", "path"), json_routes())
def test_a_text_plain_body_is_a_415_with_the_error_body(system, worker_token, method, path):
    r = _send(system, worker_token, method, path, content=b'{"name": "x"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415, (method, path, r.status_code, r.text)
    assert r.json() == {"error": "UNSUPPORTED_MEDIA_TYPE", "message": "Unsupported media type: the body must be JSON",
                        "details": [{"path": [], "message": "Content-Type 'text/plain': expected application/json"}]}


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "text/csv", "application/xml"])
def test_other_media_types_are_a_415_too(api, content_type):
    r = api.post("/api/policies", content=b'{"name": "x", "rules": []}', headers={"content-type": content_type})
    assert r.status_code == 415 and r.json()["error"] == "UNSUPPORTED_MEDIA_TYPE"


def test_a_json_object_as_curl_d_labels_it_is_read_and_a_real_form_is_a_415(api):
    """`curl -d '{...}'` without a Content-Type header sends application/x-www-form-urlencoded: the README's
    examples and earlier clients do, so a JSON object so labelled is read; a real form is not JSON."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = api.post("/api/policies", content=b'{"name": "sent by curl -d", "rules": []}', headers=form)
    assert r.status_code == 201, r.text
    for body in (b"name=x&rules=", b"[1, 2]", b"{not json"):
        r = api.post("/api/policies", content=body, headers=form)
        assert r.status_code == 415 and r.json()["error"] == "UNSUPPORTED_MEDIA_TYPE", (body, r.text)


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/merge-patch+json"])
def test_json_and_a_body_without_a_content_type_are_read(api, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = api.post("/api/policies", content=b'{"name": "media type ok", "rules": []}', headers=headers)
    assert r.status_code == 201, (content_type, r.text)


def test_the_415_comes_after_the_token_check(system):
    with system.client(token="wrong") as bad:
        r = bad.post("/api/policies", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 401


def test_the_multipart_upload_is_not_a_json_route(api):
    r = api.post("/api/upload", content=b'{"file": "x"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "VALIDATION_ERROR"


# --- 400 vs 422 (docs/decisions.md): 400 when the request does not match its schema, 422 when it
# does but cannot be done as things stand; seed 003's Runs API has its query parameters 422.

SCHEMA_MISMATCHES = [  # (method, path, json body), each a 400 VALIDATION_ERROR with details
    ("POST", "/api/scan/run", {"upload_id": "u"}),                       # seed 002: a missing field
    ("POST", "/api/scan/run", {"policy_id": 5, "upload_id": "u", "mapping_id": "m"}),  # a wrong type
    ("POST", "/api/policies", {"name": "p", "rules": [], "colour": "red"}),  # an unknown field
    ("POST", "/api/datastores", {"name": "d", "type": "nope", "path": "x"}),  # a value not allowed
    ("POST", "/api/v1/connectors", {"name": "c"}),
    ("POST", "/api/tokens", {"role": "Emperor"}),
    ("POST", "/api/mapping/confirm", ["not", "an", "object"]),
    ("GET", "/api/assets?datastore=x", None),                            # query parameters
    ("GET", "/api/v1/scans?limit=0", None),
    ("GET", "/api/v1/scans?status=sleeping", None),
    ("GET", "/api/v1/scans?cursor=bm90LWEtY3Vyc29y", None),
    ("GET", "/api/v1/scans?since=yesterday", None),
    ("GET", "/api/scans/x/history?colour=red", None),
    ("GET", "/api/scan/x?as_of=0109-05-25T10:11:59Z", None),              # before the log's epoch (was a 500)
    ("GET", "/api/v1/scans/x?as_of=1969-12-31T23:59:59Z", None),
    ("GET", "/api/operations/٣", None),                                  # seed 003: an invalid id is a 400
    ("PUT", "/api/operations/abort/x", None),
]


@pytest.mark.parametrize(("method", "path", "body"), SCHEMA_MISMATCHES)
def test_a_request_that_does_not_match_its_schema_is_a_400(api, method, path, body):
    r = api.request(method, path, json=body)
    assert r.status_code == 400, (method, path, r.status_code, r.text)
    got = r.json()
    assert got["error"] == "VALIDATION_ERROR" and got["details"] and all("path" in d for d in got["details"]), got


@pytest.mark.parametrize("query", ["page=0", "size=5000", "result=sleeping", "finished=maybe", "datastore=x",
                                   "created_date=yesterday", "sort_created=up"])
def test_the_runs_api_has_its_query_parameters_422_as_seed_003_documents(api, query):
    r = api.get(f"/api/operations?{query}")
    assert r.status_code == 422, (query, r.text)
    got = r.json()
    assert got["error"] == "UNPROCESSABLE_ENTITY" and got["message"] == "Invalid query parameters"
    assert got["details"][0]["path"][0] == query.split("=")[0]


def test_a_schema_valid_request_that_cannot_be_done_is_a_422(api):
    key = {"Idempotency-Key": "http-conventions-422"}
    first = api.post("/api/policies", json={"name": "kept", "rules": []}, headers=key)
    assert first.status_code == 201, first.text
    again = api.post("/api/policies", json={"name": "another body", "rules": []}, headers=key)
    assert again.status_code == 422
    assert again.json() == {"error": "UNPROCESSABLE_ENTITY",
                            "message": "This Idempotency-Key was already used with a different request body"}
