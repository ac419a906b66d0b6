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

from services.domain import contracts as c
from services.domain import scoring
from services.domain.envelope import deterministic_id, follow
from services.domain.kinds import KINDS, kind_of
from services.domain.rules import UNREAD_SAMPLES
from services.domain.vocabulary import COORDINATOR_SOURCE as SOURCE
from services.domain.vocabulary import FINISHED, TERMINAL

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


def _event(cause: dict, type_: str, data: dict | c.Contract, *id_parts: object, time: str | None = None) -> dict:
    if isinstance(data, c.Contract):
        data = _dump(data)
    return follow(cause, type_, data, id=deterministic_id(type_, *id_parts), source=SOURCE, time=time)


def _dump(message: c.Contract) -> dict:
    """A message's data as JSON-able dict: the fields given, as given (an optional field left out,
    such as a compliance unit's container, stays out, so the JSON is what a dict literal made)."""
    return message.model_dump(exclude_unset=True)


def request(state: dict | None, command: dict) -> tuple[dict, list[dict]]:
    """A RunScan command: the scan is recorded, with its full snapshot, as queued.

    A redelivered command for a scan we already know changes nothing and emits nothing.
    """
    if state is not None:
        return state, []
    req = command["data"]
    status = next_status(None, "request")
    rules = checks(req)
    new_state = {
        "scan_id": req["scan_id"],
        "kind": kind_of(req).name,
        "workspace_id": req["workspace_id"],
        "status": status,
        "severities": {r["id"]: r.get("severity", "medium") for r in rules},
        "rules_total": len(rules),
        "record_total": (req.get("upload") or {}).get("record_count", 0),
        "units": {},
        "violations_by_rule": {},
        "violations_by_severity": {},
        "record_count": 0,
        "errors": [],
        "status_overrides": {},
        "finished": None,
        "attempt": 0,
        "deleted": False,
        "request": req,  # a resume sends the remaining units' work again from it
    }
    return new_state, [_event(command, c.SCAN_REQUESTED, req, req["scan_id"], time=req["requested_at"])]


def checks(req: dict) -> list[dict]:
    """What a scan evaluates, as its kind says: a policy's rules, or the monitors of every target."""
    return kind_of(req).checks(req)


def _unit(plan: dict) -> dict:
    return {"status": "pending", "plan": plan, "attempt": 0, "records": 0, "by_rule": {}, "by_severity": {},
            "rules_done": 0, "error": None}


def start(state: dict, cause: dict, units: list[dict], started_at: str,
          enumeration: dict | None = None) -> tuple[dict, list[dict], list[dict]]:
    """The coordinator planned the units: the scan runs. Returns state, events, work units.

    A scan with nothing to do (a workspace without enabled monitors) completes at once. A
    sensitive-data scan's plan comes with its `enumeration` (contracts.ScanEnumerated without
    scan_id and time), recorded first; one that could list no connector fails.
    """
    if state["status"] != "queued":
        return state, [], []
    new = deepcopy(state)
    enumerated: list[dict] = []
    if enumeration is not None:
        new["enumeration"] = enumeration
        enumerated = [_event(cause, c.SCAN_ENUMERATED, c.ScanEnumerated(
            scan_id=state["scan_id"], enumerated_at=started_at, **enumeration), state["scan_id"], time=started_at)]
        if enumeration["status"] == "failed":
            errors = "; ".join(f"{x['connector_id']}: {x.get('error')}" for x in enumeration["connectors"])
            new, finished = fail(new, cause, f"no connector could be listed ({errors})", started_at)
            return new, [*enumerated, *finished], []
    new["status"] = next_status(state["status"], "start")
    new["units"] = {u["unit_id"]: _unit(u) for u in units}
    # a dict: the units are the kind's plans, passed through as planned (UnitPlan is their contract)
    started = _event(cause, c.SCAN_STARTED, {
        "scan_id": state["scan_id"],
        "units": units,
        "record_total": state["record_total"],
        "rules_total": state["rules_total"],
        "started_at": started_at,
    }, state["scan_id"])
    if not units:
        new["status"] = next_status(new["status"], KINDS[new["kind"]].outcome(new))
        new, finished = _finish(new, cause, started_at)
        return new, [*enumerated, started, *finished], []
    return new, [*enumerated, started], units


def fail(state: dict, cause: dict, error: str, finished_at: str) -> tuple[dict, list[dict]]:
    """The scan cannot run at all (its data could not be read or split)."""
    new = deepcopy(state)
    new["status"] = next_status(state["status"], "fail")
    new["errors"] = [error]
    return _finish(new, cause, finished_at)


def unit_done(state: dict, event: dict, finished_at: str) -> tuple[dict, list[dict]]:
    """A unit reported (completed or failed). The last one finishes a running scan.

    A unit reported twice (at-least-once delivery) counts once; a report that arrives after
    the scan finished re-emits the same finish event, in case the first was lost in a crash.
    A unit that finishes after its scan was aborted still counts, so a resume skips it.
    """
    data = event["data"]
    unit = state["units"].get(data["unit_id"])
    if unit is None:
        return state, []
    if unit["status"] != "pending":
        return state, ([_finished_event(state, event)] if state["status"] in TERMINAL else [])
    if state["status"] not in ("running", "aborted"):
        return state, []
    new = deepcopy(state)
    failed = event["type"] == c.UNIT_FAILED
    new["units"][data["unit_id"]].update(
        status="failed" if failed else "completed",
        records=data.get("record_count", 0),  # a failed monitor unit's rows were read all the same
        by_rule=data.get("violations_by_rule", {}),
        by_severity=data.get("violations_by_severity", {}),
        files=data.get("files") or {},
        unevaluated=data.get("unevaluated") or {},
        error=data.get("error") if failed else None)
    if new["status"] != "running" or any(u["status"] == "pending" for u in new["units"].values()):
        return _totalled(new), []
    new["status"] = next_status("running", KINDS[new["kind"]].outcome(new))  # sensitive: by coverage
    return _finish(new, event, finished_at)


def abort(state: dict | None, command: dict, aborted_at: str) -> tuple[dict, list[dict]]:
    """Stop a queued or running scan. Units not yet reported stay pending; what they found stays."""
    if state is None:
        raise Rejected("unknown scan")
    new = deepcopy(state)
    new["status"] = next_status(state["status"], "abort")
    new["attempt"] = state.get("attempt", 0)
    new = _totalled(new)
    return new, [_event(command, c.SCAN_ABORTED, c.ScanAborted(
        scan_id=state["scan_id"],
        aborted_at=aborted_at,
        aborted_by=command["data"]["requested_by"],
        attempt=new["attempt"],
        record_count=new["record_count"],
        violation_count=sum(new["violations_by_rule"].values()),
        units_completed=sum(1 for u in new["units"].values() if u["status"] == "completed"),
    ), command["id"], time=aborted_at)]


def resume(state: dict | None, command: dict, resumed_at: str) -> tuple[dict, list[dict], list[dict]]:
    """Continue an aborted or failed scan with only the units not completed: returns their work again.

    Each resumed unit gets a new attempt number, which goes into the ids of the events it
    causes, so a second run of a unit is a new fact and not a duplicate of the first. A scan
    aborted after its last units had already run has nothing left to send: it completes at
    once, under the new attempt.
    """
    if state is None:
        raise Rejected("unknown scan")
    kind = KINDS[state["kind"]]
    if not kind.resumable:
        raise Rejected(f"a {kind.label} cannot be resumed; rerun it")
    if reason := kind.resume_refused(state["request"], resumed_at):  # sensitive: its timeout passed
        raise Rejected(reason)
    if not state["units"]:
        raise Rejected("the scan never started, so there is nothing to resume; rerun it")
    new = deepcopy(state)
    new["status"] = next_status(state["status"], "resume")
    new["attempt"] = state.get("attempt", 0) + 1
    new["finished"] = None
    new["errors"] = []
    work, reported = [], set(command["data"].get("reported_units") or ())
    for unit_id, unit in new["units"].items():
        if unit["status"] == "completed" or (unit["status"] == "pending" and unit_id in reported):
            continue  # done, or its result is on the log and on its way here: not run again
        unit.update(_unit(unit["plan"]), attempt=new["attempt"])
        work.append(unit["plan"])
    new = _totalled(new)
    resumed = _event(command, c.SCAN_RESUMED, c.ScanResumed(
        scan_id=state["scan_id"],
        attempt=new["attempt"],
        unit_ids=[u["unit_id"] for u in work],
        resumed_at=resumed_at,
        resumed_by=command["data"]["requested_by"],
    ), command["id"], time=resumed_at)
    if not any(u["status"] == "pending" for u in new["units"].values()):
        # every unit had completed (the last ones after the abort): no unit would ever report,
        # so the new attempt finishes now, with the counts its units reported: complete, or as
        # the kind's own rule says (a sensitive-data scan's coverage may still fall short)
        new["status"] = next_status(new["status"], kind.outcome(new))
        new, finished = _finish(new, command, resumed_at)
        return new, [resumed, *finished], []
    return new, [resumed], work


def delete(state: dict | None, command: dict, deleted_at: str) -> tuple[dict, list[dict]]:
    """Hide a finished run's record; its violations and its events stay on the ledger."""
    if state is None:
        raise Rejected("unknown scan")
    if state["status"] not in FINISHED:
        raise Rejected(f"cannot delete a scan that is {state['status']}; abort it first")
    if state.get("deleted"):
        return state, []
    new = deepcopy(state)
    new["deleted"] = True
    return new, [_event(command, c.SCAN_DELETED, c.ScanDeleted(
        scan_id=state["scan_id"], deleted_at=deleted_at, deleted_by=command["data"]["requested_by"],
    ), state["scan_id"], time=deleted_at)]


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
    score = compliance_score(new) if state["status"] == "completed" else 0.0  # no score without a complete scan
    new["finished"]["compliance_score"] = score
    return new, [_event(command, c.VIOLATION_STATUS_CHANGED, c.ViolationStatusChanged(
        scan_id=state["scan_id"],
        violation_id=vid,
        status=data["status"],
        previous_status=previous,
        compliance_score=score,
        changed_by=data["changed_by"],
        changed_at=changed_at,
    ), command["id"], time=changed_at)]


def compliance_score(state: dict) -> float:
    open_by_severity = dict(state["violations_by_severity"])
    for severity, status in state["status_overrides"].values():
        if status != "open":
            open_by_severity[severity] = open_by_severity.get(severity, 0) - 1
    return scoring.compliance_score(state["record_total"], open_by_severity)


def _totalled(state: dict) -> dict:
    """Scan totals are sums over the units that reported, so resetting a unit drops its share."""
    reported = [u for u in state["units"].values() if u["status"] != "pending"]
    by_rule: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for u in reported:
        _add_counts(by_rule, u["by_rule"])
        _add_counts(by_severity, u["by_severity"])
    state["violations_by_rule"], state["violations_by_severity"] = by_rule, by_severity
    state["record_count"] = sum(u["records"] for u in reported)
    state["unevaluated"] = _unevaluated(reported)
    if state["units"]:  # without units, the error is the planning failure fail() recorded
        state["errors"] = [u["error"] for u in reported if u["error"]]
    return state


def _unevaluated(units: list[dict]) -> dict[str, dict]:
    """Per rule, the records its units could not judge: counts summed, the first sample rows kept."""
    out: dict[str, dict] = {}
    for unit in units:
        for rule_id, got in (unit.get("unevaluated") or {}).items():
            mine = out.setdefault(rule_id, {"count": 0, "rows": []})
            mine["count"] += got["count"]
            mine["rows"] = sorted(mine["rows"] + got["rows"])[:UNREAD_SAMPLES]
    return out


def _finish(state: dict, cause: dict, finished_at: str) -> tuple[dict, list[dict]]:
    state = _totalled(state)
    state["finished"] = _dump(c.ScanFinished(  # kept in the state: a late unit report re-emits it
        scan_id=state["scan_id"],
        status=state["status"],
        record_count=state["record_count"],
        rules_processed=state["rules_total"] if state["status"] == "completed" else _rules_done(state),
        violation_count=sum(state["violations_by_rule"].values()),
        violations_by_rule=state["violations_by_rule"],
        violations_by_severity=state["violations_by_severity"],
        # only a completed scan has a score: a failed one did not read all its data (0, as seed 001 shows
        # for a scan without results), never 100 for violations it could not find
        compliance_score=compliance_score(state) if state["status"] == "completed" else 0.0,
        error="; ".join(state["errors"]) or None,
        finished_at=finished_at,
        **({"unevaluated": state["unevaluated"]} if state["unevaluated"] else {}),
    ))
    return state, [_finished_event(state, cause)]


def _finished_event(state: dict, cause: dict) -> dict:
    finished = state["finished"]
    # the attempt is part of the id: a resumed scan finishing again is a new fact
    return _event(cause, c.SCAN_FINISHED, finished, state["scan_id"], state.get("attempt", 0),
                  time=finished["finished_at"])


def _rules_done(state: dict) -> int:
    units = state["units"].values()
    done = sum(1 for u in units if u["status"] == "completed")
    return state["rules_total"] * done // max(len(state["units"]), 1)


def _add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n
