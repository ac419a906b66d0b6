import pytest

from services.domain import contracts as c
from services.domain import lifecycle, scoring
from services.domain.envelope import make_event

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
    state, _events = lifecycle.request(None, run_scan_command())
    state, _started, _work = lifecycle.start(state, run_scan_command(), units(n), "t1")
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


def test_all_units_failing_fails_the_scan():
    state = started_scan(2)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", c.UNIT_FAILED, r1=0, error="a"), "t2")
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u1", c.UNIT_FAILED, r1=0, error="b"), "t3")
    assert state["status"] == finished["data"]["status"] == "failed"
    assert finished["data"]["error"] == "a; b"


def test_a_failed_unit_is_a_partial_failure_that_keeps_partial_counts():
    state = started_scan(2)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u1", c.UNIT_FAILED, r1=1, error="boom"), "t3")
    assert state["status"] == "partial_failure"
    assert finished["data"]["status"] == "partial_failure"
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


def monitor_scan_command(targets):
    data = {"scan_id": "m1", "kind": "monitor", "workspace_id": "w", "requested_by": "me",
            "requested_at": "2024-01-01T00:00:00.000Z", "targets": targets}
    return make_event(c.RUN_SCAN, "m1", data, id="cmd-m", source="test", workspace_id="w")


def test_a_monitor_scan_counts_the_monitors_of_every_target():
    target = {"container": {"id": 1, "name": "t", "container_type": "table"}, "datastore": {},
              "monitors": [{"id": "m-a", "severity": "low"}, {"id": "m-b", "severity": "high"}]}
    state, events = lifecycle.request(None, monitor_scan_command([target, target]))
    assert state["rules_total"] == 4 and state["record_total"] == 0 and state["kind"] == "monitor"
    assert [e["type"] for e in events] == [c.SCAN_REQUESTED]


def test_a_scan_with_nothing_to_do_completes_when_it_starts():
    command = monitor_scan_command([])
    state, _ = lifecycle.request(None, command)
    state, events, work = lifecycle.start(state, command, [], "t1")
    assert state["status"] == "completed" and work == []
    assert [e["type"] for e in events] == [c.SCAN_STARTED, c.SCAN_FINISHED]
    assert events[1]["data"]["violation_count"] == 0


def operator(type_, cmd_id="op-1"):
    return make_event(type_, "s1", {"scan_id": "s1", "requested_by": "ops"}, id=cmd_id, source="test",
                      workspace_id="w")


def test_abort_keeps_reported_units_and_a_late_unit_still_counts():
    state = started_scan(3)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, [aborted] = lifecycle.abort(state, operator(c.ABORT_SCAN), "t3")
    assert state["status"] == "aborted" and aborted["type"] == c.SCAN_ABORTED
    assert aborted["data"]["violation_count"] == 2 and aborted["data"]["units_completed"] == 1
    state, events = lifecycle.unit_done(state, unit_event("s1.u1", r1=5), "t4")  # was in flight
    assert events == [] and state["status"] == "aborted" and state["units"]["s1.u1"]["status"] == "completed"
    with pytest.raises(lifecycle.Rejected):
        lifecycle.abort(state, operator(c.ABORT_SCAN, "op-2"), "t5")


def test_resume_sends_only_units_not_completed_and_ends_with_the_uninterrupted_counts():
    state = started_scan(3)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, _ = lifecycle.abort(state, operator(c.ABORT_SCAN), "t3")
    state, [resumed], work = lifecycle.resume(state, operator(c.RESUME_SCAN, "op-2"), "t4")
    assert [u["unit_id"] for u in work] == ["s1.u1", "s1.u2"] and resumed["data"]["attempt"] == 1
    assert state["status"] == "running" and state["units"]["s1.u1"]["attempt"] == 1
    state, _ = lifecycle.unit_done(state, unit_event("s1.u1", r1=3), "t5")
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u2", r1=4), "t6")
    assert finished["data"]["status"] == "completed" and finished["data"]["violation_count"] == 9
    assert finished["data"]["record_count"] == 150


def test_a_resume_waits_for_the_units_the_read_models_showed_completed_instead_of_running_them_again():
    # the projector applied s1.u1's result before the coordinator read it (they read apart): the resume
    # names it, so it is not run again, and its result, read after the resume, still counts
    state = started_scan(3)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, _ = lifecycle.abort(state, operator(c.ABORT_SCAN), "t3")
    resume = operator(c.RESUME_SCAN, "op-2")
    resume["data"]["reported_units"] = ["s1.u0", "s1.u1"]
    state, [resumed], work = lifecycle.resume(state, resume, "t4")
    assert resumed["data"]["unit_ids"] == ["s1.u2"]
    assert [u["unit_id"] for u in work] == ["s1.u2"] and state["status"] == "running"
    assert state["units"]["s1.u1"]["status"] == "pending" and state["units"]["s1.u1"]["attempt"] == 0
    state, _ = lifecycle.unit_done(state, unit_event("s1.u1", r1=3), "t5")
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u2", r1=4), "t6")
    assert finished["data"]["status"] == "completed" and finished["data"]["violation_count"] == 9


def test_a_resume_whose_only_unit_left_was_reported_waits_for_it_and_then_completes():
    state = started_scan(2)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, _ = lifecycle.abort(state, operator(c.ABORT_SCAN), "t3")
    resume = operator(c.RESUME_SCAN, "op-2")
    resume["data"]["reported_units"] = ["s1.u1"]
    state, events, work = lifecycle.resume(state, resume, "t4")
    assert work == [] and [e["type"] for e in events] == [c.SCAN_RESUMED] and state["status"] == "running"
    state, [finished] = lifecycle.unit_done(state, unit_event("s1.u1", r1=1), "t5")
    assert finished["data"]["status"] == "completed" and finished["data"]["violation_count"] == 3


def test_resume_of_a_failed_scan_reruns_the_failed_units_and_drops_their_counts():
    state = started_scan(2)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, [first] = lifecycle.unit_done(state, unit_event("s1.u1", c.UNIT_FAILED, r1=1, error="boom"), "t3")
    state, _, work = lifecycle.resume(state, operator(c.RESUME_SCAN), "t4")
    assert [u["unit_id"] for u in work] == ["s1.u1"] and state["violations_by_rule"] == {"r1": 2}
    state, [again] = lifecycle.unit_done(state, unit_event("s1.u1", r1=1), "t5")
    assert again["data"]["status"] == "completed" and again["data"]["error"] is None
    assert again["id"] != first["id"]  # a second finish is a new fact, not a duplicate


def test_resume_and_delete_are_refused_in_the_wrong_state():
    running = started_scan(1)
    with pytest.raises(lifecycle.Rejected):
        lifecycle.resume(running, operator(c.RESUME_SCAN), "t")
    with pytest.raises(lifecycle.Rejected):
        lifecycle.delete(running, operator(c.DELETE_SCAN), "t")
    done, _ = lifecycle.unit_done(running, unit_event("s1.u0"), "t2")
    with pytest.raises(lifecycle.Rejected):
        lifecycle.resume(done, operator(c.RESUME_SCAN), "t")
    deleted, [event] = lifecycle.delete(done, operator(c.DELETE_SCAN), "t3")
    assert event["type"] == c.SCAN_DELETED and lifecycle.delete(deleted, operator(c.DELETE_SCAN, "x"), "t4")[1] == []


def test_resume_of_an_aborted_scan_whose_every_unit_completed_finishes_at_once():
    state = started_scan(2)
    state, _ = lifecycle.unit_done(state, unit_event("s1.u0", r1=2), "t2")
    state, [_aborted] = lifecycle.abort(state, operator(c.ABORT_SCAN), "t3")
    state, late = lifecycle.unit_done(state, unit_event("s1.u1", r1=3), "t4")  # was in flight: still counts
    assert late == [] and state["status"] == "aborted"
    state, events, work = lifecycle.resume(state, operator(c.RESUME_SCAN, "op-2"), "t5")
    assert work == [] and state["status"] == "completed" and state["attempt"] == 1
    assert [e["type"] for e in events] == [c.SCAN_RESUMED, c.SCAN_FINISHED]
    resumed, finished = events
    assert resumed["data"]["unit_ids"] == [] and resumed["data"]["attempt"] == 1
    assert finished["data"]["status"] == "completed" and finished["data"]["finished_at"] == "t5"
    assert finished["data"]["violation_count"] == 5 and finished["data"]["record_count"] == 100
    assert finished["data"]["rules_processed"] == 2 and finished["data"]["error"] is None
    assert finished["data"]["compliance_score"] == scoring.compliance_score(100, {"high": 5})
    # a redelivered unit result re-emits that same finish (same id, same data); nothing is left to resume
    [again] = lifecycle.unit_done(state, unit_event("s1.u1", r1=3), "t9")[1]
    assert (again["id"], again["data"]) == (finished["id"], finished["data"])
    with pytest.raises(lifecycle.Rejected):
        lifecycle.resume(state, operator(c.RESUME_SCAN, "op-3"), "t6")
