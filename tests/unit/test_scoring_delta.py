from services.domain import delta, scoring


def test_score_is_100_without_violations():
    assert scoring.compliance_score(1000, {}) == 100.0
    assert scoring.compliance_score(0, {}) == 100.0


def test_score_formula_by_hand():
    # 100 records, 2 high (5 each) + 1 critical (10): 100 * 100 / 120
    assert scoring.compliance_score(100, {"high": 2, "critical": 1}) == 83.33


def test_score_never_rises_when_violations_are_added():
    last = 100.0
    counts = {"low": 0, "medium": 0, "high": 0, "critical": 0}
    for i in range(200):
        counts[list(counts)[i % 4]] += 1
        score = scoring.compliance_score(50, counts)
        assert 0 <= score <= last
        last = score


def test_heavier_severity_costs_more():
    assert scoring.compliance_score(10, {"critical": 1}) < scoring.compliance_score(10, {"low": 1})


def test_delta_counts_distinct_signatures():
    previous = {"r1:A", "r1:B", "r2:A"}
    current = {"r1:A", "r2:B"}
    assert delta.compute(current, previous, "prev", 7) == {
        "new_count": 1, "resolved_count": 2, "unchanged_count": 1,
        "previous_scan_id": "prev", "previous_violation_count": 7}


def test_signature():
    assert delta.signature("r1", "ACC-1") == "r1:ACC-1"
    assert delta.signature("r1", None) == "r1:"

