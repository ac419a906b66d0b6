"""Bad input gets the documented error body and writes nothing."""

import pytest

from harness import data
from services.adapters.db import connect
from services.stores import config_store
from tests.e2e.helpers import confirm, policy, upload


@pytest.fixture(scope="module")
def ready(system):
    with system.client() as api:
        up = upload(api, data.to_csv(data.transactions(50, seed=9)))
        mapping = confirm(api, up["upload_id"])
        pol = policy(api, rules=data.RULES[:1])
    return {"upload_id": up["upload_id"], "mapping_id": mapping["mapping_id"], "policy_id": pol["id"]}


def test_every_route_needs_a_token(system, ready):
    with system.client(token="wrong") as bad:
        for method, path in [("GET", "/api/scan/x"), ("POST", "/api/scan/run"), ("GET", "/api/policies"),
                             ("POST", "/api/upload"), ("POST", "/api/mapping/confirm"),
                             ("PATCH", "/api/violations/x"), ("GET", "/api/scan/x/violations")]:
            r = bad.request(method, path)
            assert r.status_code == 401, (method, path)
            assert r.json() == {"error": "UNAUTHORIZED", "message": "Missing or invalid API token"}
    import httpx
    assert httpx.get(f"{system.url}/api/policies").status_code == 401


def test_missing_fields_are_a_validation_error_with_details(api):
    r = api.post("/api/scan/run", json={"upload_id": "u"})
    assert r.status_code == 400
    assert r.json() == {"error": "VALIDATION_ERROR", "message": "Invalid request body", "details": [
        {"path": ["policy_id"], "message": "Required"}, {"path": ["mapping_id"], "message": "Required"}]}


def test_wrong_types_are_a_validation_error(api):
    r = api.post("/api/scan/run", json={"policy_id": 5, "upload_id": "u", "mapping_id": "m"})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "VALIDATION_ERROR" and body["details"][0]["path"] == ["policy_id"]


def test_malformed_json_is_a_validation_error(api):
    r = api.post("/api/scan/run", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "VALIDATION_ERROR"


def test_the_three_documented_404s(api, ready):
    cases = [
        ({**ready, "mapping_id": "nope"}, "Mapping not found. Confirm mapping first."),
        ({**ready, "upload_id": "nope"}, "Upload not found. Upload data first."),
        ({**ready, "policy_id": "nope"}, "No rules found for this policy."),
    ]
    for body, message in cases:
        r = api.post("/api/scan/run", json=body)
        assert r.status_code == 404
        assert r.json() == {"error": "NOT_FOUND", "message": message}


def test_policy_without_active_rules_is_no_rules_found(api, ready):
    pol = policy(api, rules=[{**data.RULES[0], "active": False}], name="inactive")
    r = api.post("/api/scan/run", json={**ready, "policy_id": pol["id"]})
    assert r.status_code == 404 and r.json()["message"] == "No rules found for this policy."


def test_unknown_scan_is_the_documented_404(api):
    r = api.get("/api/scan/does-not-exist")
    assert r.status_code == 404
    assert r.json() == {"error": "NOT_FOUND", "message": "Scan not found"}


def test_rule_on_a_column_the_upload_lacks_is_rejected_before_the_scan(api, ready):
    pol = policy(api, rules=[{"id": "x", "name": "x", "type": "required", "severity": "low",
                              "params": {"field": "iban"}}], name="needs iban")
    r = api.post("/api/scan/run", json={**ready, "policy_id": pol["id"]})
    assert r.status_code == 400 and r.json()["details"][0]["path"] == ["policy_id"]


def test_malformed_csv_is_a_400_and_stores_nothing(api, system):
    before = _count(system, "uploads")
    r = api.post("/api/upload", files={"file": ("bad.csv", b"a,b\n1,2\n3,4,5\n", "text/csv")})
    assert r.status_code == 400 and r.json()["error"] == "VALIDATION_ERROR"
    r = api.post("/api/upload", files={"file": ("empty.csv", b"", "text/csv")})
    assert r.status_code == 400
    r = api.post("/api/upload", data={"nofile": "x"})
    assert r.status_code == 400
    assert _count(system, "uploads") == before


def test_oversized_upload_is_a_413(api, system):
    before = _count(system, "uploads")
    r = api.post("/api/upload", files={"file": ("big.csv", b"a\n" + b"1\n" * 20001, "text/csv")})
    assert r.status_code == 413 and r.json()["error"] == "PAYLOAD_TOO_LARGE"
    assert _count(system, "uploads") == before


def test_mapping_errors(api, ready):
    r = api.post("/api/mapping/confirm", json={"upload_id": "nope", "mapping": {"amount": "Amount"}})
    assert r.status_code == 404 and r.json()["message"] == "Upload not found. Upload data first."
    r = api.post("/api/mapping/confirm", json={"upload_id": ready["upload_id"], "mapping": {"amount": "Nope"}})
    assert r.status_code == 400 and r.json()["details"] == [
        {"path": ["mapping", "amount"], "message": "Column 'Nope' is not in the upload"}]


def test_bad_policy_rules_are_rejected_with_their_path(api):
    r = api.post("/api/policies", json={"name": "bad", "rules": [
        {"id": "a", "name": "a", "type": "threshold", "severity": "extreme", "params": {"field": "amount"}}]})
    assert r.status_code == 400
    assert all(d["path"][:2] == ["rules", 0] for d in r.json()["details"])
    # an ordering against text would pass every record silently: refused when the policy is saved
    r = api.post("/api/policies", json={"name": "silent", "rules": [
        {"id": "big", "name": "Big", "type": "threshold", "severity": "high",
         "params": {"field": "amount", "op": "gt", "value": "abc"}}]})
    assert r.status_code == 400 and r.json()["details"] == [
        {"path": ["rules", 0, "params", "value"],
         "message": "Value error, 'gt' compares numbers: value must be a number, not 'abc'"}]


def test_a_mapping_names_known_targets_and_warns_of_columns_that_do_not_read_as_them(api):
    csv = ("Txn ID,Account ID,Amount,Date\nT1,A1,9500.00,2024-01-15T10:00:00Z\nT2,A2,about 9500,next Tuesday\n"
           "T3,A3,120,2024-01-16\n")
    up = api.post("/api/upload", files={"file": ("messy.csv", csv.encode(), "text/csv")}).json()
    r = api.post("/api/mapping/confirm", json={"upload_id": up["upload_id"], "mapping": {"amountz": "Amount",
                                                                                        "account": "Account ID"}})
    assert r.status_code == 400 and [d["path"] for d in r.json()["details"]] == [["mapping", "amountz"]]
    assert "amount, account, timestamp" in r.json()["details"][0]["message"]
    r = api.post("/api/mapping/confirm", json={"upload_id": up["upload_id"], "mapping": {
        "amount": "Amount", "account": "Account ID", "timestamp": "Date", "transaction_id": "Txn ID"}})
    assert r.status_code == 201, r.text
    assert [(w["path"], w["message"].split(" (")[0]) for w in r.json()["warnings"]] == [
        (["mapping", "amount"], "column 'Amount': 1 of the first 3 values do not read as a number"),
        (["mapping", "timestamp"], "column 'Date': 1 of the first 3 values do not read as a timestamp")]


def test_another_workspace_sees_nothing(api, system, ready):
    conn = connect(system.db_url)
    config_store.ensure_workspace(conn, "other")
    config_store.add_token(conn, "other-token", "other", "Admin", "eve")
    conn.close()
    with system.client(token="other-token") as other:
        for path in [f"/api/policies/{ready['policy_id']}"]:
            assert other.get(path).status_code == 404
        r = other.post("/api/scan/run", json=ready)
        assert r.status_code == 404 and r.json()["message"] == "Mapping not found. Confirm mapping first."
        assert other.get("/api/policies").json()["items"] == []


def test_idempotency_key_returns_the_first_answer(api, ready):
    headers = {"Idempotency-Key": "k-123"}
    first = api.post("/api/scan/run", json=ready, headers=headers)
    second = api.post("/api/scan/run", json=ready, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


def _count(system, table: str) -> int:
    conn = connect(system.db_url)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()
