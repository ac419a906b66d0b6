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


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "text/csv", "application/xml"])
def test_other_media_types_are_a_415_too(api, content_type):
    r = api.post("/api/policies", content=b'{"name": "x", "rules": []}', headers={"content-type": content_type})
    assert r.status_code == 415 and r.json()["error"] == "UNSUPPORTED_MEDIA_TYPE"


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
