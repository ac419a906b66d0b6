"""Ordinary bad input is a documented 4xx with the error body, never a 500 (issue 10).

One test per family: integers in paths and query strings, datastore paths, request and field
sizes, regexes RE2 cannot run; then every route of the OpenAPI document with generated path,
query, header and body values (hypothesis, and schemathesis from the document's schemas),
where the only requirement is: no 5xx, and an error body.
Everything runs as the Admin of a workspace of its own, so nothing here can touch the data of
the other modules sharing the session's system.
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.web.errors import ApiError, handle_api_error, handle_unexpected
from api.web.limits import BodyLimit
from harness import data
from tests.e2e.helpers import confirm, run, upload

BIG = "100000000000000000000"  # beyond 64 bits
INT64_OVER = str(2 ** 63)
NOT_ASCII = ["٣", "²", "１", "߁"]  # Arabic-Indic three, superscript two, fullwidth one, NKo one


def assert_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.request.method, str(r.request.url), r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    assert "Traceback" not in r.text
    return body


@pytest.fixture(scope="module")
def tenant(system):
    """The Admin client of a fresh workspace."""
    with system.client() as admin:
        r = admin.post("/api/workspaces", json={"name": f"bad input {uuid.uuid4().hex[:6]}"})
        assert r.status_code == 201, r.text
        token = r.json()["admin_token"]["token"]
    with system.client(token=token) as api:
        yield api


@pytest.fixture(scope="module")
def scan_id(tenant):
    up = upload(tenant, data.to_csv(data.transactions(30, seed=10)))
    mapping = confirm(tenant, up["upload_id"])
    r = tenant.post("/api/policies", json={"name": "one rule", "rules": data.RULES[:1]})
    assert r.status_code == 201, r.text
    return run(tenant, r.json()["id"], up["upload_id"], mapping["mapping_id"])


@pytest.fixture(scope="module")
def asset_id(system, tenant):
    """An asset of a local_dir datastore of this workspace (for the monitor routes)."""
    name = f"bad-input-{uuid.uuid4().hex[:8]}"
    folder = system.datastore_root / name
    folder.mkdir()
    (folder / "accounts.csv").write_text("id,code\n1,A-1\n2,B-2\n")
    r = tenant.post("/api/datastores", json={"name": name, "type": "local_dir", "path": name})
    assert r.status_code == 201, r.text  # the session system shares one datastore root
    r = tenant.post(f"/api/datastores/{r.json()['id']}/sync")
    assert r.status_code < 300, r.text
    assets = tenant.get("/api/assets").json()["items"]
    return next(a["id"] for a in assets if a["name"] == "accounts.csv")


# --- 1. integers --------------------------------------------------------------------------------------

def test_integers_beyond_64_bits_and_non_ascii_digits_are_4xx(tenant, scan_id):
    cases = [(method, path, status) for big in (BIG, INT64_OVER, "0" * 30 + "1") for method, path, status in [
        ("GET", f"/api/operations/{big}", 404),
        ("DELETE", f"/api/operations/{big}", 404),
        ("GET", f"/api/operations/{big}/containers", 404),
        ("PUT", f"/api/operations/abort/{big}", 404),
        ("PUT", f"/api/operations/run/{big}", 404),
        ("PUT", f"/api/operations/rerun/{big}", 404),
        ("GET", f"/api/datastores/{big}", 404),
        ("DELETE", f"/api/datastores/{big}", 404),
        ("POST", f"/api/datastores/{big}/sync", 404),
        ("GET", f"/api/assets/{big}", 404),
        ("GET", f"/api/assets/{big}/monitors", 404),
        ("GET", f"/api/assets/{big}/monitors/m", 404),
        ("GET", f"/api/assets?datastore={big}", 400),
        ("GET", f"/api/operations?id={big}", 422),
        ("GET", f"/api/operations?page={big}", 422),
        ("GET", f"/api/operations?datastore={big}", 422),
        ("GET", f"/api/operations?container=1&container={big}", 422),
        ("GET", f"/api/operations?schedule_id={big}", 422),
        ("GET", f"/api/scan/{scan_id}/violations?page={big}", 400),
        ("GET", f"/api/scan/{scan_id}/violations?size={big}", 400),
    ]]
    for digit in NOT_ASCII:
        cases += [
            ("GET", f"/api/operations/{digit}", 400),
            ("DELETE", f"/api/operations/{digit}", 400),
            ("PUT", f"/api/operations/abort/{digit}", 400),
            ("GET", f"/api/datastores/{digit}", 404),
            ("GET", f"/api/assets/{digit}", 404),
            ("GET", f"/api/assets/{digit}/monitors", 404),
            ("GET", f"/api/assets?datastore={digit}", 400),
            ("GET", f"/api/operations?id={digit}", 422),
            ("GET", f"/api/operations?page={digit}", 422),
            ("GET", f"/api/scan/{scan_id}/violations?page={digit}", 400),
        ]
    for odd in ("1e20", "", "+1", " 1", "1_0", "0x10", "1.0", "-0"):
        cases += [("GET", f"/api/assets?datastore={quote(odd)}", 400),
                  ("GET", f"/api/operations?page={quote(odd)}", 422),
                  ("GET", f"/api/operations/{quote(odd, safe='')}", 400 if odd else 200)]
        cases += [("GET", f"/api/scan/{scan_id}/violations?page={quote(odd)}", 400)]
    for method, path, status in cases:
        r = tenant.request(method, path)
        if status == 200:  # "/api/operations/" with nothing after: the list, or no such route
            assert r.status_code < 500, (path, r.text)
            continue
        body = assert_error(r, status)
        if status in (400, 422):
            assert body["details"], body
    # the documented answers still hold for a real id and a real page
    assert tenant.get(f"/api/scan/{scan_id}/violations?page=2&size=1").status_code == 200
    assert tenant.get("/api/operations?page=1&size=5").status_code == 200


# --- 2. datastore paths -------------------------------------------------------------------------------

def test_nul_bytes_and_long_names_in_a_datastore_are_400(tenant):
    cases = [
        ({"name": "nul", "type": "local_dir", "path": "a\x00b"}, ["path"]),
        ({"name": "nul", "type": "sqlite", "path": "\x00"}, ["path"]),
        ({"name": "n\x00ul", "type": "local_dir", "path": "a"}, ["name"]),
        ({"name": "long", "type": "local_dir", "path": "a" * 300}, ["path"]),
        ({"name": "long", "type": "sqlite", "path": "/".join(["b" * 250] * 15)}, ["path"]),
        ({"name": "long", "type": "local_dir", "path": "c" * 5000}, ["path"]),
        ({"name": "n" * 5000, "type": "local_dir", "path": "a"}, ["name"]),
    ]
    for body, path in cases:
        r = tenant.post("/api/datastores", json=body)
        details = assert_error(r, 400)["details"]
        assert path in [d["path"] for d in details], details
    assert tenant.get("/api/datastores/%00").status_code == 404
    assert_error(tenant.get("/api/datastores/" + "9" * 5000), 404)


# --- 3. sizes -----------------------------------------------------------------------------------------

def _rule(i: int, **changes) -> dict:
    return {"id": f"r{i}", "name": f"rule {i}", "type": "required", "severity": "low",
            "params": {"field": "account"}, **changes}


def test_bodies_rule_counts_and_fields_are_capped(tenant):
    # a body over the cap (4 MiB by default) is a 413, declared or streamed without a length
    r = tenant.post("/api/policies", json={"name": "x" * (5 * 1024 * 1024), "rules": [_rule(0)]})
    assert_error(r, 413)

    def chunks():
        for _ in range(6):
            yield b"x" * (1024 * 1024)
    r = tenant.post("/api/policies", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413)

    # too many rules, and fields too long: 400 naming the path
    r = tenant.post("/api/policies", json={"name": "many", "rules": [_rule(i) for i in range(20_000)]})
    assert ["rules"] in [d["path"] for d in assert_error(r, 400)["details"]]
    fields = [
        ({"name": "n" * 1001, "rules": [_rule(0)]}, ["name"]),
        ({"name": "d", "description": "d" * 10_001, "rules": [_rule(0)]}, ["description"]),
        ({"name": "rn", "rules": [_rule(0), _rule(1, name="n" * 1001)]}, ["rules", 1, "name"]),
        ({"name": "rf", "rules": [_rule(0, params={"field": "f" * 1001})]}, ["rules", 0, "params", "field"]),
        ({"name": "rx", "rules": [_rule(0, type="pattern", params={"field": "account", "regex": "a" * 1001})]},
         ["rules", 0, "params", "regex"]),
        ({"name": "vl", "rules": [_rule(0, type="allowed_values",
                                        params={"field": "currency", "values": ["USD"] * 10_001})]},
         ["rules", 0, "params", "values"]),
        ({"name": "vs", "rules": [_rule(0, type="allowed_values",
                                        params={"field": "currency", "values": ["USD", "v" * 1001]})]},
         ["rules", 0, "params", "values", 1]),
    ]
    for body, path in fields:
        r = tenant.post("/api/policies", json=body)
        assert path in [d["path"] for d in assert_error(r, 400)["details"]], (path, r.text[:300])
    r = tenant.post("/api/scan/run", json={"policy_id": "p", "upload_id": "u", "mapping_id": "m",
                                           "audit_name": "a" * 1001})
    assert ["audit_name"] in [d["path"] for d in assert_error(r, 400)["details"]]

    # the largest valid policy is accepted, and updating it is too
    rules = [_rule(i) for i in range(1000)]
    r = tenant.post("/api/policies", json={"name": "n" * 1000, "description": "d" * 10_000, "rules": rules})
    assert r.status_code == 201, r.text[:300]
    policy_id = r.json()["id"]
    r = tenant.put(f"/api/policies/{policy_id}", json={"name": "big", "rules": rules})
    assert r.status_code == 200, r.text[:300]
    r = tenant.put(f"/api/policies/{policy_id}", json={"name": "big", "rules": [*rules, _rule(1000)]})
    assert ["rules"] in [d["path"] for d in assert_error(r, 400)["details"]]


def test_the_upload_cap_is_its_own_setting():
    """BodyLimit in-process: /api/upload has its own cap, the rest the JSON cap (413 with the error body)."""
    async def echo(request: Request):
        return JSONResponse({"size": len(await request.body())})

    app = Starlette(routes=[Route("/api/upload", echo, methods=["POST"]), Route("/api/x", echo, methods=["POST"])],
                    middleware=[Middleware(BodyLimit, default=100, per_path={"/api/upload": 1000})],
                    exception_handlers={ApiError: handle_api_error})
    async def chunked():
        for _ in range(2):
            yield b"x" * 600

    async def requests() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            return [await client.post("/api/x", content=b"x" * 100), await client.post("/api/x", content=b"x" * 101),
                    await client.post("/api/upload", content=b"x" * 1000),
                    await client.post("/api/upload", content=b"x" * 1001),
                    await client.post("/api/upload", content=chunked()),
                    await client.post("/api/x", content=b"x", headers={"content-length": "1x"})]

    fits, over, upload_fits, upload_over, upload_streamed, bad_length = asyncio.run(requests())
    assert fits.json() == {"size": 100} and upload_fits.json() == {"size": 1000}
    for r in (over, upload_over, upload_streamed):
        assert_error(r, 413)
    assert_error(bad_length, 400)


def test_an_unexpected_error_is_a_500_with_the_error_body_and_no_traceback():
    """The last resort only (no ordinary input gets here): the exception's text is not shown."""
    async def broken(_request: Request):
        raise RuntimeError("secret detail /var/lib/x.db")

    app = Starlette(routes=[Route("/boom", broken)], exception_handlers={Exception: handle_unexpected})

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/boom")

    r = asyncio.run(request())
    assert r.status_code == 500
    assert r.json() == {"error": "INTERNAL_ERROR", "message": "Internal server error"}
    assert "secret" not in r.text


# --- 4. regexes RE2 cannot run ------------------------------------------------------------------------

RE2_REFUSES = [r"(?=x)\w+", r"(?<!x)y", r"(a)\1", r"\d{2000}"]


def test_regexes_re2_cannot_run_are_refused_at_policy_time(tenant, asset_id):
    for regex in RE2_REFUSES:
        rules = [_rule(0), _rule(1, type="pattern", params={"field": "account", "regex": regex})]
        r = tenant.post("/api/policies", json={"name": "re2", "rules": rules})
        details = assert_error(r, 400)["details"]
        assert [d["path"] for d in details] == [["rules", 1, "params", "regex"]], details
        assert "RE2" in details[0]["message"]
    ok = tenant.post("/api/policies", json={"name": "re2 ok", "rules": [
        _rule(0, type="pattern", params={"field": "account", "regex": r"^ACC-\d{3}$"})]})
    assert ok.status_code == 201, ok.text
    bad = [_rule(0, type="pattern", params={"field": "account", "regex": "(?!ACC)"})]
    r = tenant.put(f"/api/policies/{ok.json()['id']}", json={"name": "re2", "rules": bad})
    assert [d["path"] for d in assert_error(r, 400)["details"]] == [["rules", 0, "params", "regex"]]

    for regex in RE2_REFUSES:
        r = tenant.post(f"/api/assets/{asset_id}/monitors", json={
            "name": "re2", "type": "pattern", "params": {"column": "code", "regex": regex}})
        details = assert_error(r, 400)["details"]
        assert ["params", "regex"] in [d["path"] for d in details], details
    r = tenant.post(f"/api/assets/{asset_id}/monitors", json={
        "name": "codes", "type": "pattern", "params": {"column": "code", "regex": r"[A-Z]-\d"}})
    assert r.status_code == 201, r.text
    r = tenant.patch(f"/api/assets/{asset_id}/monitors/{r.json()['id']}",
                     json={"params": {"column": "code", "regex": r"(\w)\1"}})
    assert ["params", "regex"] in [d["path"] for d in assert_error(r, 400)["details"]]


# --- 5. every route, generated values -----------------------------------------------------------------

QUERY_NAMES = ["page", "size", "id", "datastore", "container", "schedule_id", "offset", "result", "finished",
               "has_logs", "created_date", "start_date", "end_date", "sort_created", "sort_duration",
               "operation_type", "force_abort", "rule_id", "status", "severity"]
NASTY = ["0", "1", "-1", BIG, INT64_OVER, str(2 ** 63 - 1), str(-(2 ** 63) - 1), *NOT_ASCII, "1e20", "1.5", "",
         " ", "a\x00b", "\x00", "x" * 5000, "../../etc/passwd", "%", "null", "true", "[]", "{}", "2024-13-45",
         "(?=a)", "é", "\U0001f600", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")]
values = st.one_of(st.sampled_from(NASTY), st.text(max_size=40), st.integers(-(2 ** 70), 2 ** 70).map(str))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=False),
              st.sampled_from(NASTY), st.text(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)


def _operations(system) -> list[tuple[str, str, dict]]:
    document = httpx.get(f"{system.url}/openapi.json").json()
    ops = []
    for path, methods in document["paths"].items():
        if path == "/healthz":  # its 503 says "not healthy", whatever the input
            continue
        for method, op in methods.items():
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            ops.append((method.upper(), path, schema or {}))
    return ops


def _bodies(schema: dict):
    names = sorted(schema.get("properties", {})) or ["x"]
    key = st.one_of(st.sampled_from(names), st.text(max_size=10))
    return st.one_of(
        st.dictionaries(key, json_values, max_size=len(names) + 1).map(lambda d: ("json", d)),
        json_values.map(lambda v: ("json", v)),
        st.binary(max_size=200).map(lambda b: ("raw", b)),
    )


def _fill(path: str, draw_value) -> str:
    return re.sub(r"{(\w+)}", lambda m: quote(draw_value(), safe=""), path)


def _send(client: httpx.Client, method: str, url: str, query: dict | None = None, body=None,
          headers: dict | None = None) -> httpx.Response:
    sent = {name: value.strip(" \t").encode("latin-1") for name, value in (headers or {}).items()}
    kwargs: dict = {"params": query or {}, "headers": sent}
    if body is not None:
        kind, value = body
        if kind == "json":
            kwargs["content"] = json.dumps(value).encode()
            kwargs["headers"].setdefault("content-type", b"application/json")
        else:
            kwargs["content"] = value
    return client.request(method, url, **kwargs)


# Header values httpx can send (latin-1, no CR/LF/NUL); an Idempotency-Key or a content type.
header_values = st.one_of(st.sampled_from(["", "x" * 10_000, "٣".encode().decode("latin-1"), "multipart/form-data",
                                           "application/json; charset=utf-16", "text/csv", "multipart/form-data; "
                                           "boundary=x"]),
                          st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                                  max_size=40))
headers = st.dictionaries(st.sampled_from(["idempotency-key", "content-type"]), header_values, max_size=2)


def _no_5xx(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.method, str(r.request.url), r.request.content[:300],
                                 r.status_code, r.text[:500])
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body


def test_every_route_with_every_nasty_path_value_answers_4xx_not_5xx(system, tenant):
    """Deterministic sweep: each route of the document, each nasty value in each path parameter."""
    for method, path, _schema in _operations(system):
        for value in NASTY if "{" in path else [None]:
            _no_5xx(_send(tenant, method, _fill(path, lambda value=value: value) if value is not None else path))


@pytest.fixture(scope="module")
def operations(system):
    return _operations(system)


@settings(max_examples=2000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(gen=st.data())
def test_generated_requests_never_get_a_5xx(operations, tenant, gen):
    """Hypothesis over the OpenAPI document: any route and method, generated path, query and body."""
    method, path, schema = gen.draw(st.sampled_from(operations), label="operation")
    url = _fill(path, lambda: gen.draw(values, label="path value"))
    query = gen.draw(st.dictionaries(st.sampled_from(QUERY_NAMES), values, max_size=4), label="query")
    body = gen.draw(st.none() | _bodies(schema), label="body") if method in ("POST", "PUT", "PATCH") else None
    _no_5xx(_send(tenant, method, url, query, body, gen.draw(headers, label="headers")))


def test_schemathesis_over_the_openapi_document_finds_no_5xx(system, tenant):
    """Schemathesis generates each operation's path values and bodies from /openapi.json."""
    schema = schemathesis.openapi.from_url(f"{system.url}/openapi.json")
    auth = {"Authorization": tenant.headers["Authorization"]}
    failures, cases = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/healthz":
            continue

        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            nonlocal cases
            cases += 1
            r = case.call(headers=auth)
            if r.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.body, r.status_code, r.text[:300]))

        check()
    assert cases > 0
    assert not failures, failures
