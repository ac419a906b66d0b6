"""A compliance analyst's whole flow over HTTP, against the real broker, worker and projector."""
from collections import Counter

from harness import data
from tests.e2e.helpers import all_violations, policy, scan_once, upload, wait_settled


def test_scan_gives_exact_violations_score_history_and_delta(api):
    pol = policy(api)
    rows = data.transactions(3000, seed=1)
    want = data.expected(rows)
    scan_id, scan = scan_once(api, rows, pol["id"], audit_name="Q1 audit")

    total = sum(len(v) for v in want.values())
    assert scan["status"] == "completed", scan
    assert scan["violation_count"] == total
    assert scan["record_count"] == 3000
    assert scan["rules_processed"] == scan["rules_total"] == len(data.RULES)
    assert scan["audit_name"] == "Q1 audit" and scan["audit_id"] is None
    assert scan["policy_id"] == pol["id"]
    assert scan["mapping_config"] == data.MAPPING and scan["temporal_scale"] == "daily"
    assert scan["completed_at"] is not None
    assert scan["delta"] is None  # first scan of this policy
    expected_score = data.score(3000, data.by_severity(want))
    assert scan["compliance_score"] == expected_score
    assert scan["score_history"] == [{"score": expected_score, "timestamp": scan["completed_at"],
                                      "action": "scan_completed", "violation_id": None}]
    assert {f["type"] for f in scan["pii_findings"]} == {"email"}  # PII of the upload linked to the scan

    violations = all_violations(api, scan_id)
    assert len(violations) == total == len({v["id"] for v in violations})
    for rule_id, signatures in want.items():
        got = sorted(v["signature"] for v in violations if v["rule_id"] == rule_id)
        assert got == sorted(signatures), rule_id
    # each record's violation carries its mapped fields: who, how much, when (a group's carries none)
    by_index = dict(enumerate(rows))
    for v in violations:
        if v["rule_id"] in ("vel", "struct"):
            assert v["record"] == {}
            continue
        row = by_index[v["record_index"]]
        assert float(v["record"]["amount"]) == row["Amount"] and v["record"]["timestamp"] == row["Date"]
        assert v["record"].get("account") == row["Account ID"]
    page = api.get(f"/api/scan/{scan_id}/violations", params={"rule_id": "dup", "size": 2}).json()
    assert page["total"] == len(want["dup"]) and len(page["items"]) == min(2, len(want["dup"]))
    assert page["pages"] == data.ceil_pages(len(want["dup"]), 2)

    # A second scan of the same policy on changed data: delta by rule_id:account signatures.
    rows2 = data.transactions(2500, seed=2)
    want2 = data.expected(rows2)
    scan2_id, scan2 = scan_once(api, rows2, pol["id"])
    before, after = data.signatures(want), data.signatures(want2)
    assert scan2["delta"] == {"new_count": len(after - before), "resolved_count": len(before - after),
                              "unchanged_count": len(after & before), "previous_scan_id": scan_id,
                              "previous_violation_count": total}

    # Resolving a violation is a ledger event: the score rises and the history records it.
    target = next(v for v in all_violations(api, scan2_id, rule_id="big"))
    r = api.patch(f"/api/violations/{target['id']}", json={"status": "resolved"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved"
    after_patch = api.get(f"/api/scan/{scan2_id}").json()
    open_now = data.by_severity(want2) - Counter({"high": 1})
    assert after_patch["compliance_score"] == data.score(2500, open_now) > scan2["compliance_score"]
    assert [h["action"] for h in after_patch["score_history"]] == ["scan_completed", "violation_resolved"]
    assert after_patch["score_history"][-1]["violation_id"] == target["id"]
    assert after_patch["score_history"][-1]["score"] == after_patch["compliance_score"]
    resolved = api.get(f"/api/scan/{scan2_id}/violations", params={"status": "resolved"}).json()
    assert [v["id"] for v in resolved["items"]] == [target["id"]]


def test_violations_survive_policy_edit_because_the_scan_keeps_its_snapshot(api):
    pol = policy(api, rules=[data.RULES[0]], name="big only")
    rows = data.transactions(400, seed=3)
    scan_id, scan = scan_once(api, rows, pol["id"])
    assert api.put(f"/api/policies/{pol['id']}", json={"name": "edited", "rules": [data.RULES[2]]}).status_code == 200
    again = api.get(f"/api/scan/{scan_id}").json()
    assert again["violation_count"] == len(data.expected(rows)["big"]) == scan["violation_count"]
    assert again["rules_total"] == 1


def test_scan_is_visible_at_once_and_polls_to_completed(api, system):
    pol = policy(api, rules=data.RULES[:2])
    up = upload(api, data.to_csv(data.transactions(200, seed=4)))
    mapping = api.post("/api/mapping/confirm", json={"upload_id": up["upload_id"], "mapping": data.MAPPING}).json()
    r = api.post("/api/scan/run", json={"policy_id": pol["id"], "upload_id": up["upload_id"],
                                        "mapping_id": mapping["mapping_id"]})
    first = api.get(f"/api/scan/{r.json()['scan_id']}")
    assert first.status_code == 200 and first.json()["status"] in ("pending", "running", "completed")
    assert wait_settled(api, r.json()["scan_id"])["status"] == "completed"
