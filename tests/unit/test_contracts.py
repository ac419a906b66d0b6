"""Every event the pure code produces validates against its published contract (extra fields
are forbidden, so a field added in code but not in the model fails here)."""
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from services.domain import contracts as c
from services.domain import lifecycle
from services.domain.envelope import make_event
from services.domain.evaluation import progress_event, unit_result_event, violation_events
from services.domain.kinds import kind_of
from services.domain.kinds.monitor import target_units
from services.domain.monitors import evaluate_monitor, parse_monitor
from services.domain.planning import plan, with_row_numbers
from services.domain.rules import evaluate, parse_rule
from services.runners.targets import anomaly_event

RULES = [parse_rule({"id": "big", "name": "Big", "type": "threshold", "severity": "high",
                     "params": {"field": "amount", "op": "gt", "value": 10}}).model_dump()]
MAPPING = {"amount": "Amount", "account": "Account"}


def validate(event: dict) -> None:
    assert event["specversion"] == "1.0" and event["id"] and event["subject"]
    c.MODELS[event["type"]].model_validate(event["data"])


def compliance_request() -> dict:
    return {"scan_id": "s1", "operation_id": 1, "kind": "compliance", "workspace_id": "w", "requested_by": "me",
            "requested_at": "2024-01-01T00:00:00.000Z", "policy": {"id": "p", "name": "P", "rules": RULES},
            "upload": {"id": "u", "blob": "b", "record_count": 3, "columns": ["Amount", "Account"]},
            "mapping": {"id": "m", "mapping": MAPPING, "temporal_scale": "daily"}}


def test_a_compliance_scan_from_request_to_status_change():
    command = make_event(c.RUN_SCAN, "s1", compliance_request(), id="cmd", source="t", workspace_id="w")
    validate(command)
    table = with_row_numbers(pa.table({"Amount": [5.0, 50.0, 500.0], "Account": ["a", "b", "a"]}))
    slices = plan(table, [parse_rule(r) for r in RULES], MAPPING, 2, 4)
    units = [{"unit_id": f"s1.u{s.index}", "index": s.index, "blob": "x", "record_count": len(s.rows),
              "counted_records": len(s.rows), "partition_key": list(s.partition_key), "rule_ids": s.rule_ids}
             for s in slices]
    state, events = lifecycle.request(None, command)
    state, started, _ = lifecycle.start(state, command, units, "t1")
    for event in [*events, *started]:
        validate(event)
    for work in kind_of(command["data"]).work(command, command["data"], units):
        validate(work)
        found = evaluate(table, parse_rule(RULES[0]), MAPPING, "daily")
        for event in violation_events(work, work["data"], parse_rule(RULES[0]), found):
            validate(event)
        validate(progress_event(work, work["data"], 1))
        result = unit_result_event(work, work["data"], {"big": 1}, {"high": 1}, [], 1)
        validate(result)
        state, finished = lifecycle.unit_done(state, result, "t2")
        for event in finished:
            validate(event)
    assert state["status"] == "completed"
    failed = unit_result_event(work, work["data"], {}, {}, ["boom"], 0)
    validate(failed)
    change = make_event(c.CHANGE_VIOLATION_STATUS, "s1", {"scan_id": "s1", "violation_id": "v", "severity": "high",
                                                          "status": "resolved", "changed_by": "me"},
                        id="c2", source="t", workspace_id="w")
    validate(change)
    for event in lifecycle.change_violation_status(state, change, "t3")[1]:
        validate(event)
    delete = make_event(c.DELETE_SCAN, "s1", {"scan_id": "s1", "requested_by": "me"}, id="d", source="t",
                        workspace_id="w")
    validate(delete)
    validate(lifecycle.delete(state, delete, "t4")[1][0])


@pytest.mark.parametrize("kind", ["monitor", "catalog"])
def test_monitor_scans_and_syncs_with_abort_and_resume(kind):
    monitor = {"id": "m1", "name": "rows", "type": "record_count", "severity": "low", "params": {"min": 5}}
    target = {"container": {"id": 7, "name": "a.csv", "container_type": "file", "datastore_id": 1},
              "datastore": {"id": 1, "name": "Lake", "type": "local_dir", "path": "/data/lake"},
              "monitors": [monitor] if kind == "monitor" else []}
    request = {"scan_id": "m", "operation_id": 2, "kind": kind, "workspace_id": "w", "requested_by": "me",
               "requested_at": "2024-01-01T00:00:00.000Z", "targets": [target], "datastore": target["datastore"]}
    command = make_event(c.RUN_SCAN, "m", request, id="cmd", source="t", workspace_id="w")
    validate(command)
    state, events = lifecycle.request(None, command)
    units = target_units(request)
    state, started, _ = lifecycle.start(state, command, units, "t1")
    for event in [*events, *started]:
        validate(event)
    (work,) = kind_of(request).work(command, request, units)
    validate(work)
    anomaly = evaluate_monitor(pa.table({"x": [1]}), parse_monitor(monitor), datetime.now(UTC))
    validate(anomaly_event(work, anomaly))
    abort = make_event(c.ABORT_SCAN, "m", {"scan_id": "m", "requested_by": "me"}, id="a", source="t",
                       workspace_id="w")
    validate(abort)
    state, aborted = lifecycle.abort(state, abort, "t2")
    validate(aborted[0])
    if kind == "monitor":
        resume = make_event(c.RESUME_SCAN, "m", {"scan_id": "m", "requested_by": "me"}, id="r", source="t",
                            workspace_id="w")
        state, resumed, again = lifecycle.resume(state, resume, "t3")
        validate(resumed[0])
        (work,) = kind_of(state["request"]).work(resume, state["request"], again, state["attempt"])
        assert work["data"]["attempt"] == 1
        validate(work)


class Recorder:
    """Collects what a runner publishes (the runner's Kafka edge), to check the events' shape."""

    def __init__(self):
        self.events = []

    def publish(self, topic, event, key=None):
        self.events.append(event)

    def flush(self, *args):
        pass


@pytest.mark.parametrize("kind", ["monitor", "catalog"])
def test_the_events_of_a_monitor_or_sync_unit(tmp_path, kind):
    from services.runners import run_work
    from services.settings import Settings

    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    monitors = [{"id": "m1", "name": "rows", "type": "record_count", "severity": "low", "params": {"min": 5}},
                {"id": "m2", "name": "gone", "type": "null_rate", "params": {"column": "nope", "max": 0}}]
    target = {"container": {"id": 7, "name": "a.csv", "container_type": "file", "datastore_id": 1},
              "datastore": {"id": 1, "name": "Lake", "type": "local_dir", "path": str(tmp_path)},
              "monitors": monitors if kind == "monitor" else []}
    request = {"scan_id": "m", "kind": kind, "workspace_id": "w", "requested_by": "me",
               "requested_at": "2024-01-01T00:00:00.000Z", "targets": [target]}
    command = make_event(c.RUN_SCAN, "m", request, id="cmd", source="t", workspace_id="w")
    (work,) = kind_of(request).work(command, request, target_units(request))
    recorder = Recorder()
    run_work(work, None, recorder, Settings(datastore_root=tmp_path))  # reads are confined to the root
    for event in recorder.events:
        validate(event)
    types = [e["type"] for e in recorder.events]
    if kind == "catalog":
        assert types == [c.UNIT_COMPLETED] and recorder.events[0]["data"]["profile"][0]["row_count"] == 2
    else:
        assert types == [c.UNIT_PROGRESSED, c.VIOLATION_DETECTED, c.UNIT_PROGRESSED, c.UNIT_PROGRESSED,
                         c.UNIT_FAILED]
        stages = [m["stage"] for m in recorder.events[-1]["data"]["monitors"]]
        assert stages == ["completed", "failed"]
