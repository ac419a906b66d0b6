import pytest

from services import contracts as c
from services import lifecycle, scoring
from services.envelope import make_event

RULES = [{"id": "r1", "name": "big", "type": "threshold", "severity": "high", "active": True,
          "params": {"field": "amount", "op": "gt", "value": 10}},
         {"id": "r2", "name": "acct", "type": "required", "severity": "low", "active": True,
          "params": {"field": "account"}}]


def run_scan_command(scan_id="s1", records=100):
    data = {"scan_id": scan_id, "kind": "compliance", "workspace_id": "w", "requested_by": "me",
            "requested_at": "2024-01-01T00:00:00.000Z", "policy": {"id": "p", "name": "P", "rules": RULES},
            "upload": {"id": "u", "blob": "b", "record_count": records, "columns": ["a"]},
            "mapping": {"id": "m", "mapping": {}, "temporal_scale": "daily"}}
    return make_event(c.RUN_SCAN, scan_id, data, id="cmd-1", source="test", workspace_id="w")


def units(n):
    return [{"unit_id": f"s1.u{i}", "index": i, "blob": f"b{i}", "record_count": 50, "partition_key": [],
             "rule_ids": ["r1", "r2"]} for i in range(n)]


def unit_event(unit_id, type_=c.UNIT_COMPLETED, r1=1, error=None):
    data = {"scan_id": "s1", "unit_id": unit_id, "violations_by_rule": {"r1": r1},
            "violations_by_severity": {"high": r1}}
    if type_ == c.UNIT_FAILED:
        data["error"] = error
    else:
        data.update(record_count=50, rules_done=2)
    return make_event(type_, "s1", data, id=f"ev-{unit_id}-{type_}", source="test", workspace_id="w")


def started_scan(n=2):
    state, events = lifecycle.request(None, run_scan_command())
    state, started, work = lifecycle.start(state, run_scan_command(), units(n), "t1")
    return state


def test_request_then_start_runs_with_every_unit_pending():
    cmd = run_scan_command()
    state, events = lifecycle.request(None, cmd)
    assert state["status"] == "queued"
    assert [e["type"] for e in events] == [c.SCAN_REQUESTED]
    assert events[0]["data"]["policy"]["rules"] == RULES  # the snapshot travels whole
    state, events, work = lifecycle.start(state, cmd, units(3), "t1")
    assert state["status"] == "running"
    assert [e["type"] for e in events] == [c.SCAN_STARTED]
    assert len(work) == 3 and all(u["status"] == "pending" for u in state["units"].values())


def test_redelivered_request_changes_nothing():
    state, _ = lifecycle.request(None, run_scan_command())
    again, events = lifecycle.request(state, run_scan_command())
    assert again is state and events == []


def test_event_ids_are_deterministic():
    _, first = lifecycle.request(None, run_scan_command())
    _, second = lifecycle.request(None, run_scan_command())
    assert first[0]["id"] == second[0]["id"]


def test_last_unit_completes_the_scan_with_summed_counts():
    state = started_scan(2)
    state, events = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    assert events == [] and state["status"] == "running"
    state, events = lifecycle.unit_done(state, unit_event("s1.u1", r1=3), "t3")
    assert state["status"] == "completed"
    [finished] = events
    assert finished["type"] == c.SCAN_FINISHED
    assert finished["data"]["violation_count"] == 5
    assert finished["data"]["record_count"] == 100
    assert finished["data"]["rules_processed"] == 2
    assert finished["data"]["compliance_score"] == scoring.compliance_score(100, {"high": 5})


def test_a_unit_reported_twice_counts_once_and_reemits_the_same_finish():
    state = started_scan(1)
    state, [first] = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, [again] = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t9")
    assert state["finished"]["violation_count"] == 2
    assert again == first


def test_a_failed_unit_fails_the_scan_and_keeps_partial_counts():
    state = started_scan(2)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u1", c.UNIT_FAILED, r1=1, error="boom"), "t3")
    assert state["status"] == "failed"
    assert finished["data"]["status"] == "failed"
    assert finished["data"]["violation_count"] == 3
    assert finished["data"]["error"] == "boom"
    assert finished["data"]["rules_processed"] == 1  # one of two units completed all its rules


def test_unknown_unit_is_ignored():
    state = started_scan(1)
    assert lifecycle.unit_done(state, unit_event("other"), "t") == (state, [])


def change(status, severity="high", vid="v1", cmd_id="c1"):
    return make_event(c.CHANGE_VIOLATION_STATUS, "s1", {"scan_id": "s1", "violation_id": vid, "severity": severity,
                                                         "status": status, "changed_by": "me"},
                      id=cmd_id, source="test", workspace_id="w")


def test_resolving_a_violation_raises_the_score_and_reopening_lowers_it():
    state = started_scan(1)
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u0", r1=4), "t2")
    before = finished["data"]["compliance_score"]
    state, [resolved] = lifecycle.change_violation_status(state, change("resolved"), "t3")
    assert resolved["data"]["compliance_score"] == scoring.compliance_score(100, {"high": 3}) > before
    assert resolved["data"]["previous_status"] == "open"
    state, [reopened] = lifecycle.change_violation_status(state, change("open", cmd_id="c2"), "t4")
    assert reopened["data"]["compliance_score"] == before
    assert lifecycle.change_violation_status(state, change("open", cmd_id="c3"), "t5")[1] == []


def test_violation_status_cannot_change_while_running():
    with pytest.raises(lifecycle.Rejected):
        lifecycle.change_violation_status(started_scan(1), change("resolved"), "t")


@pytest.mark.parametrize("status,action,expected", [
    ("queued", "start", "running"), ("running", "complete", "completed"), ("running", "abort", "aborted"),
    ("aborted", "resume", "running"), ("running", "fail", "failed"), ("queued", "abort", "aborted")])
def test_transitions(status, action, expected):
    assert lifecycle.next_status(status, action) == expected


@pytest.mark.parametrize("status,action", [("completed", "abort"), ("completed", "start"), ("aborted", "complete"),
                                           ("running", "request"), (None, "start")])
def test_rejected_transitions(status, action):
    with pytest.raises(lifecycle.Rejected):
        lifecycle.next_status(status, action)
