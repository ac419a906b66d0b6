"""The scan lifecycle: one pure state machine for every scan kind.

    queued ──▶ running ──▶ completed | partial_failure | failed
       │          │  ▲
       └──────────┴──┴──▶ aborted ──resume──▶ running

A scan's state is a JSON-able dict (it lives in the coordinator's Faust table). Every
function here takes the state and a message and returns the new state and the events to
emit; nothing here does I/O, so the whole lifecycle is unit-tested without Kafka.
Event ids are deterministic, so re-processing a message after a crash re-emits the same
events and consumers drop the copies.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any

from services import contracts as c
from services import scoring
from services.envelope import deterministic_id, follow

SOURCE = "scanledger/coordinator"
TERMINAL = frozenset({"completed", "partial_failure", "failed"})

# (status, action) -> new status. Anything else is rejected.
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (None, "request"): "queued",
    ("queued", "start"): "running",
    ("running", "complete"): "completed",
    ("running", "partial_failure"): "partial_failure",
    ("running", "fail"): "failed",
    ("queued", "fail"): "failed",
    ("queued", "abort"): "aborted",
    ("running", "abort"): "aborted",
    ("aborted", "resume"): "running",
    ("failed", "resume"): "running",
    ("partial_failure", "resume"): "running",
}


class Rejected(Exception):
    """A command the scan's current state does not allow (the API answers 409)."""


def next_status(status: str | None, action: str) -> str:
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise Rejected(f"cannot {action} a scan that is {status or 'unknown'}") from None


def _event(cause: dict, type_: str, data: dict, *id_parts: object, time: str | None = None) -> dict:
    return follow(cause, type_, data, id=deterministic_id(type_, *id_parts), source=SOURCE, time=time)


def request(state: dict | None, command: dict) -> tuple[dict, list[dict]]:
    """A RunScan command: the scan is recorded, with its full snapshot, as queued.

    A redelivered command for a scan we already know changes nothing and emits nothing.
    """
    if state is not None:
        return state, []
    req = command["data"]
    status = next_status(None, "request")
    rules = req["policy"]["rules"]
    new_state = {
        "scan_id": req["scan_id"],
        "workspace_id": req["workspace_id"],
        "status": status,
        "severities": {r["id"]: r["severity"] for r in rules},
        "rules_total": len(rules),
        "record_total": req["upload"]["record_count"],
        "units": {},
        "violations_by_rule": {},
        "violations_by_severity": {},
        "record_count": 0,
        "errors": [],
        "status_overrides": {},
        "finished": None,
    }
    return new_state, [_event(command, c.SCAN_REQUESTED, req, req["scan_id"], time=req["requested_at"])]


def start(state: dict, cause: dict, units: list[dict], started_at: str) -> tuple[dict, list[dict], list[dict]]:
    """The coordinator planned the units: the scan runs. Returns state, events, work units."""
    if state["status"] != "queued":
        return state, [], []
    new = deepcopy(state)
    new["status"] = next_status(state["status"], "start")
    new["units"] = {u["unit_id"]: {"status": "pending", "record_count": u["record_count"]} for u in units}
    started = _event(cause, c.SCAN_STARTED, {
        "scan_id": state["scan_id"],
        "units": units,
        "record_total": state["record_total"],
        "rules_total": state["rules_total"],
        "started_at": started_at,
    }, state["scan_id"])
    return new, [started], units


def fail(state: dict, cause: dict, error: str, finished_at: str) -> tuple[dict, list[dict]]:
    """The scan cannot run at all (its data could not be read or split)."""
    new = deepcopy(state)
    new["status"] = next_status(state["status"], "fail")
    new["errors"] = [error]
    return _finish(new, cause, finished_at)


def unit_done(state: dict, event: dict, finished_at: str) -> tuple[dict, list[dict]]:
    """A unit reported (completed or failed). The last one finishes the scan.

    A unit reported twice (at-least-once delivery) counts once; a report that arrives after
    the scan finished re-emits the same finish event, in case the first was lost in a crash.
    """
    data = event["data"]
    unit = state["units"].get(data["unit_id"])
    if unit is None:
        return state, []
    if unit["status"] != "pending":
        return state, ([_finished_event(state, event)] if state.get("finished") else [])
    if state["status"] != "running":
        return state, []
    new = deepcopy(state)
    failed = event["type"] == c.UNIT_FAILED
    new["units"][data["unit_id"]]["status"] = "failed" if failed else "completed"
    _add_counts(new["violations_by_rule"], data.get("violations_by_rule", {}))
    _add_counts(new["violations_by_severity"], data.get("violations_by_severity", {}))
    if failed:
        new["errors"].append(data["error"])
    else:
        new["record_count"] += data["record_count"]
    if any(u["status"] == "pending" for u in new["units"].values()):
        return new, []
    new["status"] = next_status("running", "fail" if new["errors"] else "complete")
    return _finish(new, event, finished_at)


def change_violation_status(state: dict | None, command: dict, changed_at: str) -> tuple[dict | None, list[dict]]:
    """An analyst resolves, dismisses or reopens a violation; the score follows."""
    data = command["data"]
    if state is None or state["status"] not in TERMINAL:
        raise Rejected("violations can change status only once the scan has finished")
    vid = data["violation_id"]
    previous = state["status_overrides"].get(vid, [data["severity"], "open"])[1]
    if previous == data["status"]:
        return state, []
    new = deepcopy(state)
    new["status_overrides"][vid] = [data["severity"], data["status"]]
    score = compliance_score(new)
    new["finished"]["compliance_score"] = score
    return new, [_event(command, c.VIOLATION_STATUS_CHANGED, {
        "scan_id": state["scan_id"],
        "violation_id": vid,
        "status": data["status"],
        "previous_status": previous,
        "compliance_score": score,
        "changed_by": data["changed_by"],
        "changed_at": changed_at,
    }, command["id"], time=changed_at)]


def compliance_score(state: dict) -> float:
    open_by_severity = dict(state["violations_by_severity"])
    for severity, status in state["status_overrides"].values():
        if status != "open":
            open_by_severity[severity] = open_by_severity.get(severity, 0) - 1
    return scoring.compliance_score(state["record_total"], open_by_severity)


def _finish(state: dict, cause: dict, finished_at: str) -> tuple[dict, list[dict]]:
    state["finished"] = {
        "scan_id": state["scan_id"],
        "status": state["status"],
        "record_count": state["record_count"],
        "rules_processed": state["rules_total"] if state["status"] == "completed" else _rules_done(state),
        "violation_count": sum(state["violations_by_rule"].values()),
        "violations_by_rule": state["violations_by_rule"],
        "violations_by_severity": state["violations_by_severity"],
        "compliance_score": compliance_score(state),
        "error": "; ".join(state["errors"]) or None,
        "finished_at": finished_at,
    }
    return state, [_finished_event(state, cause)]


def _finished_event(state: dict, cause: dict) -> dict:
    finished = state["finished"]
    return _event(cause, c.SCAN_FINISHED, finished, state["scan_id"], time=finished["finished_at"])


def _rules_done(state: dict) -> int:
    units = state["units"].values()
    done = sum(1 for u in units if u["status"] == "completed")
    return state["rules_total"] * done // max(len(state["units"]), 1)


def _add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n
