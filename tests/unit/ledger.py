"""A small ledger made by the pure code: what the topics the projector reads would hold after
two compliance scans of one policy, the second aborted, resumed twice (a unit failing in
between), with violations changing status and the first scan deleted.

The lifecycle events come from services.domain.lifecycle (the coordinator's decisions) and the
violations, progress and unit results from services.domain.evaluation over real Arrow tables, so
the events have the shapes the projector really gets. Each (topic, partition) is a list in
the order it was written; `written` is the order of all of them, a causal order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from services.domain import contracts as c
from services.domain import lifecycle
from services.domain.envelope import deterministic_id, follow, make_event
from services.domain.evaluation import evaluate_unit, progress_event, unit_result_event, violation_events
from services.readmodels.record import Record

COMMANDS, SCAN_EVENTS, VIOLATIONS = "t.commands", "t.scan-events", "t.violations"
WORKSPACE = "w1"
RULES = [{"id": "r1", "name": "big", "type": "threshold", "severity": "high", "active": True,
          "params": {"field": "amount", "op": "gt", "value": 10}},
         {"id": "r2", "name": "account", "type": "required", "severity": "low", "active": True,
          "params": {"field": "account"}}]
MAPPING = {"amount": "amt", "account": "acct"}
UNIT_ROWS = 4


def at(second: int) -> str:
    return f"2024-03-01T10:00:{second:02d}.000Z"


def records(first_row: int, amounts: list[float], accounts: list[str | None]) -> pa.Table:
    return pa.table({"amt": amounts, "acct": accounts,
                     "__row": pa.array(range(first_row, first_row + len(amounts)), pa.int64())})


@dataclass
class Ledger:
    streams: dict[tuple[str, int], list[Record]] = field(default_factory=dict)
    written: list[Record] = field(default_factory=list)
    clock: int = 0

    def write(self, topic: str, partition: int, event: dict) -> Record:
        stream = self.streams.setdefault((topic, partition), [])
        rec = Record(topic, partition, len(stream), event["type"], event)
        stream.append(rec)
        self.written.append(rec)
        return rec

    def tick(self) -> str:
        self.clock += 1
        return at(self.clock)


class Scan:
    """One scan driven through the coordinator's lifecycle and the evaluator's event builders."""

    def __init__(self, ledger: Ledger, scan_id: str, partition: int, operation_id: int, tables: list[pa.Table]):
        self.ledger, self.scan_id, self.partition, self.tables = ledger, scan_id, partition, tables
        requested_at = ledger.tick()
        self.request = {
            "scan_id": scan_id, "operation_id": operation_id, "kind": "compliance", "workspace_id": WORKSPACE,
            "requested_by": "analyst", "requested_at": requested_at,
            "policy": {"id": "p1", "name": "Policy", "rules": RULES},
            "upload": {"id": f"up-{scan_id}", "blob": f"blob-{scan_id}", "columns": ["amt", "acct"],
                       "record_count": sum(t.num_rows for t in tables), "pii_findings": []},
            "mapping": {"id": "m1", "mapping": MAPPING, "temporal_scale": "daily"}}
        self.state = None
        self.rule_of: dict[str, str] = {}  # violation id -> rule id
        self.units = [{"unit_id": f"{scan_id}.u{i}", "index": i, "blob": f"{scan_id}-b{i}",
                       "record_count": t.num_rows, "counted_records": t.num_rows, "partition_key": [],
                       "rule_ids": [r["id"] for r in RULES]} for i, t in enumerate(tables)]

    # --- the topics -----------------------------------------------------------------------------

    def command(self, type_: str, data: dict) -> dict:
        event = make_event(type_, self.scan_id, {"scan_id": self.scan_id, **data}, source="api",
                           id=deterministic_id("test-command", self.scan_id, len(self.ledger.written)),
                           workspace_id=WORKSPACE, time=self.ledger.tick())
        self.ledger.write(COMMANDS, self.partition, event)
        return event

    def emit(self, events: list[dict]) -> None:
        for event in events:
            self.ledger.write(SCAN_EVENTS, self.partition, event)
            if event["type"] in (c.UNIT_COMPLETED, c.UNIT_FAILED):  # the coordinator consumes unit results
                self.state, more = lifecycle.unit_done(self.state, event, self.ledger.tick())
                self.emit(more)

    # --- the coordinator ------------------------------------------------------------------------

    def run(self) -> dict:
        command = make_event(c.RUN_SCAN, self.scan_id, self.request, id=f"cmd-{self.scan_id}", source="api",
                             workspace_id=WORKSPACE, time=self.request["requested_at"])
        self.ledger.write(COMMANDS, self.partition, command)
        self.state, events = lifecycle.request(None, command)
        self.emit(events)
        self.state, events, _ = lifecycle.start(self.state, command, self.units, self.ledger.tick())
        self.emit(events)
        return command

    def abort(self) -> None:
        command = self.command(c.ABORT_SCAN, {"requested_by": "operator"})
        self.state, events = lifecycle.abort(self.state, command, self.ledger.tick())
        self.emit(events)

    def resume(self) -> None:
        command = self.command(c.RESUME_SCAN, {"requested_by": "operator"})
        self.state, events, _ = lifecycle.resume(self.state, command, self.ledger.tick())
        self.emit(events)

    def delete(self) -> None:
        command = self.command(c.DELETE_SCAN, {"requested_by": "operator"})
        self.state, events = lifecycle.delete(self.state, command, self.ledger.tick())
        self.emit(events)

    def change_status(self, violation_id: str, status: str) -> None:
        severity = {r["id"]: r["severity"] for r in RULES}[self.rule_of[violation_id]]
        command = self.command(c.CHANGE_VIOLATION_STATUS, {"violation_id": violation_id, "severity": severity,
                                                           "status": status, "changed_by": "analyst"})
        self.state, events = lifecycle.change_violation_status(self.state, command, self.ledger.tick())
        self.emit(events)

    # --- the evaluator --------------------------------------------------------------------------

    def evaluate(self, index: int, attempt: int = 0, stop_after: int | None = None, error: str | None = None) -> None:
        """Run unit `index`: its violations, a progress report per rule, then its result.

        stop_after=n: the scan is aborted after n rules (no result); error: the unit fails."""
        unit = self.units[index]
        work = follow({"subject": self.scan_id, "workspaceid": WORKSPACE, "id": f"work-{unit['unit_id']}-{attempt}"},
                      c.WORK_UNIT, {"scan_id": self.scan_id, "unit_id": unit["unit_id"], "index": index,
                                    "attempt": attempt, "blob": unit["blob"], "record_count": unit["record_count"],
                                    "counted_records": unit["counted_records"], "rules": RULES, "mapping": MAPPING,
                                    "temporal_scale": "daily"},
                      id=deterministic_id(c.WORK_UNIT, unit["unit_id"], attempt), source="coordinator")
        by_rule: dict[str, int] = {}
        by_severity: dict[str, int] = {}
        done = 0
        for outcome in evaluate_unit(self.tables[index], work["data"]):
            done += 1
            found = violation_events(work, work["data"], outcome.rule, outcome.violations)
            for event in found:
                self.rule_of[event["data"]["violation_id"]] = outcome.rule.id
                self.ledger.write(VIOLATIONS, self.partition, event)
            by_rule[outcome.rule.id] = len(found)
            by_severity[outcome.rule.severity] = by_severity.get(outcome.rule.severity, 0) + len(found)
            self.emit([progress_event(work, work["data"], done)])
            if stop_after == done:
                return
        self.emit([unit_result_event(work, work["data"], by_rule, by_severity, [error] if error else [], done)])

    def violation_ids(self) -> list[str]:
        return [r.event["data"]["violation_id"] for r in self.ledger.streams.get((VIOLATIONS, self.partition), [])
                if r.event["data"]["scan_id"] == self.scan_id]


def two_scans() -> Ledger:
    """s1 completes; s2 (same policy, later) is aborted mid-unit, resumed, fails a unit,
    is resumed again and completes; violations of both change status; s1 is deleted."""
    ledger = Ledger()
    s1 = Scan(ledger, "s1", 0, 1, [records(0, [5, 20, 30, 1], ["A", None, "B", "C"]),
                                   records(4, [50, 2, 3, 70], ["D", "E", None, "F"])])
    s2 = Scan(ledger, "s2", 1, 2, [records(0, [5, 20, 3, 1], ["A", "B", "B", "C"]),
                                   records(4, [50, 2, 3, 4], [None, "E", "E", "F"]),
                                   records(8, [1, 99, 2, 3], ["G", "H", None, "J"])])
    s1.run()
    s2.run()
    s1.evaluate(0)
    s2.evaluate(0)
    s1.evaluate(1)  # s1 completes
    s2.evaluate(1, stop_after=1)  # r1's violations are out, then the abort
    s2.abort()
    s2.resume()  # attempt 1: u1 and u2
    s2.evaluate(2, attempt=1)
    s2.evaluate(1, attempt=1, error="unit s2.u1: unreadable")  # partial_failure
    s2.resume()  # attempt 2: u1
    s2.evaluate(1, attempt=2)  # completed
    first, *_, last = s1.violation_ids()
    s1.change_status(first, "dismissed")
    s2.change_status(s2.violation_ids()[0], "resolved")
    s1.change_status(last, "resolved")
    s1.change_status(first, "open")
    s1.delete()
    return ledger


# --- monitor scans and syncs: the asset read models ---------------------------------------------------

STORE = {"id": 7, "name": "warehouse", "type": "sqlite", "path": "/data/warehouse.db"}
MONITORS = [{"id": "m1", "name": "Row count", "type": "volume", "severity": "high"},
            {"id": "m2", "name": "Freshness", "type": "freshness", "severity": "low"}]


def container(asset_id: int) -> dict:
    return {"id": asset_id, "name": f"table{asset_id}", "container_type": "table", "datastore_id": STORE["id"]}


def target_scan(ledger: Ledger, scan_id: str, kind: str, partition: int, operation_id: int) -> None:
    """A monitor scan (two monitors per asset, the first finds an anomaly, the second fails) or a
    sync (profiles each asset), over assets 1 and 2, written as the coordinator and the target
    runner write them."""
    def event(type_: str, data: dict, *id_parts, time: str | None = None) -> dict:
        return make_event(type_, scan_id, {"scan_id": scan_id, **data}, id=deterministic_id(type_, scan_id, *id_parts),
                          source="test", workspace_id=WORKSPACE, time=time or ledger.tick())

    monitors = MONITORS if kind == "monitor" else []
    targets = [{"container": container(i), "datastore": STORE, "monitors": monitors} for i in (1, 2)]
    request = {"scan_id": scan_id, "operation_id": operation_id, "kind": kind, "workspace_id": WORKSPACE,
               "requested_by": "operator", "requested_at": ledger.tick(), "targets": targets, "datastore": STORE}
    ledger.write(COMMANDS, partition, make_event(c.RUN_SCAN, scan_id, request, id=f"cmd-{scan_id}", source="api",
                                                  workspace_id=WORKSPACE, time=request["requested_at"]))
    ledger.write(SCAN_EVENTS, partition, event(c.SCAN_REQUESTED, request, time=request["requested_at"]))
    units = [{"unit_id": f"{scan_id}.u{i}", "index": i, "blob": "", "record_count": 0, "counted_records": 0,
              "partition_key": [], "rule_ids": [m["id"] for m in monitors], "container": t["container"]}
             for i, t in enumerate(targets)]
    started = {"units": units, "record_total": 0, "rules_total": len(monitors), "started_at": ledger.tick()}
    ledger.write(SCAN_EVENTS, partition, event(c.SCAN_STARTED, started))
    anomalies = 0
    for unit in units:
        asset = unit["container"]["id"]
        base = {"unit_id": unit["unit_id"], "rules_total": len(monitors)}
        ledger.write(SCAN_EVENTS, partition, event(c.UNIT_PROGRESSED, {**base, "rules_done": 0}, unit["unit_id"], 0))
        outcomes = []
        for done, monitor in enumerate(monitors, 1):
            found = monitor is monitors[0]
            outcome = {"monitor_id": monitor["id"], "monitor_name": monitor["name"],
                       "stage": "completed" if found else "failed", "duration_ms": 12 * done,
                       "error": None if found else "no timestamp column", "anomalies": int(found)}
            if found:
                anomalies += 1
                vid = deterministic_id("anomaly", scan_id, monitor["id"], asset)
                ledger.write(VIOLATIONS, partition, make_event(c.VIOLATION_DETECTED, scan_id, {
                    "violation_id": vid, "scan_id": scan_id, "unit_id": unit["unit_id"], "rule_id": monitor["id"],
                    "rule_name": monitor["name"], "rule_type": monitor["type"], "severity": monitor["severity"],
                    "account": None, "record_index": None, "record_key": str(asset), "value": "3", "window": None,
                    "signature": f"{monitor['id']}:{asset}", "container_id": asset, "observed": {"rows": 3}},
                    id=vid, source="test", workspace_id=WORKSPACE, time=ledger.tick()))
            outcomes.append(outcome)
            progress = {**base, "rules_done": done, "monitor": outcome}
            ledger.write(SCAN_EVENTS, partition, event(c.UNIT_PROGRESSED, progress, unit["unit_id"], done))
        profile = [{"container_id": asset, "columns": [{"name": "id", "type": "int64"}],
                    "row_count": 10 * operation_id}]
        ledger.write(SCAN_EVENTS, partition, event(c.UNIT_COMPLETED, {
            "unit_id": unit["unit_id"], "record_count": 0, "rules_done": len(monitors),
            "violations_by_rule": {monitors[0]["id"]: 1} if monitors else {},
            "violations_by_severity": {monitors[0]["severity"]: 1} if monitors else {},
            "monitors": outcomes, "profile": profile if kind == "catalog" else []}, unit["unit_id"]))
    ledger.write(SCAN_EVENTS, partition, event(c.SCAN_FINISHED, {
        "status": "completed", "record_count": 0, "rules_processed": len(monitors), "violation_count": anomalies,
        "violations_by_rule": {}, "violations_by_severity": {}, "compliance_score": 100.0, "error": None,
        "finished_at": ledger.tick()}))


def asset_runs() -> Ledger:
    """Two syncs and two monitor scans of the same two assets, on two partitions."""
    ledger = Ledger()
    target_scan(ledger, "sync1", "catalog", 0, 11)
    target_scan(ledger, "mon1", "monitor", 1, 12)
    target_scan(ledger, "sync2", "catalog", 0, 13)
    target_scan(ledger, "mon2", "monitor", 1, 14)
    return ledger
