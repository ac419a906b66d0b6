"""Running one container of a monitor scan or a sync (catalog): read it, check it, report.

A monitor that cannot run (a missing column, an unreadable file) is a failed monitor with
its error, never a dead worker; the unit then reports failed with every outcome, and the
asset's run shows partial_failure (or failed when no monitor could run).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa

from services.adapters.connectors.datastores import AssetReadError, DatastoreError, check_allowed, read_asset
from services.adapters.kafka import Publisher
from services.domain import contracts as c
from services.domain.envelope import deterministic_id, follow
from services.domain.monitors import Anomaly, MonitorError, evaluate_monitor, parse_monitor
from services.domain.vocabulary import EVALUATOR_SOURCE as SOURCE
from services.settings import Settings

log = logging.getLogger("scanledger.targets")


def _read(target: dict, settings: Settings, workspace_id: str) -> pa.Table:
    store, container = target["datastore"], target["container"]
    try:  # checked again at every read: a symlink may have moved since the datastore was registered
        # a snapshot from before resolved_path was kept apart holds the resolved path as its path
        path = check_allowed(settings, workspace_id, store["type"], store.get("resolved_path") or store["path"])
    except DatastoreError as exc:
        raise AssetReadError(str(exc)) from None
    return read_asset(store["type"], path, container["name"], settings.max_asset_records, store.get("dialect"))


def run_catalog_unit(message: dict, _blobs, publisher: Publisher, settings: Settings,
                     should_stop: Callable[[], bool] = lambda: False) -> None:
    """A sync's unit: profile the container, then flush. (Every kind's runner takes the blob
    store, services.runners; a container is read from its datastore instead.)"""
    _run_catalog(message, publisher, settings)
    publisher.flush()


def run_monitor_unit(message: dict, _blobs, publisher: Publisher, settings: Settings,
                     should_stop: Callable[[], bool] = lambda: False) -> None:
    """A monitor scan's unit: run the asset's monitors, then flush."""
    _run_monitors(message, publisher, settings, should_stop)
    publisher.flush()


def _run_catalog(message: dict, publisher: Publisher, settings: Settings) -> None:
    """A sync profiles the container: its columns and row count."""
    work = message["data"]
    try:
        table = _read(work["target"], settings, message["workspaceid"])
    except AssetReadError as exc:
        publisher.publish(settings.topics.scan_events, _result(message, c.UNIT_FAILED, {"error": str(exc)}))
        return
    profile = {"container_id": work["target"]["container"]["id"], "row_count": table.num_rows,
               "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema]}
    publisher.publish(settings.topics.scan_events, _result(message, c.UNIT_COMPLETED, {
        "record_count": table.num_rows, "rules_done": 0, "profile": [profile]}))


def _run_monitors(message: dict, publisher: Publisher, settings: Settings, should_stop: Callable[[], bool]) -> None:
    work = message["data"]
    monitors = work["target"]["monitors"]
    topics = settings.topics
    publisher.publish(topics.scan_events, _progress(message, 0, None))  # the asset's run is under way
    outcomes: list[dict] = []
    by_rule: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    try:
        table, read_error = _read(work["target"], settings, message["workspaceid"]), None
    except AssetReadError as exc:
        table, read_error = None, str(exc)
    for done, raw in enumerate(monitors, start=1):
        if should_stop():
            log.info("unit %s stopped: its scan was aborted", work["unit_id"])
            return
        started = time.perf_counter()
        outcome = {"monitor_id": raw["id"], "monitor_name": raw["name"], "stage": "completed", "error": None,
                   "anomalies": 0}
        try:
            if read_error:
                raise MonitorError(read_error)
            anomaly = evaluate_monitor(table, parse_monitor(raw), datetime.now(UTC))
        except (MonitorError, ValueError) as exc:
            outcome.update(stage="failed", error=str(exc))
        else:
            if anomaly is not None:
                publisher.publish(topics.violations, anomaly_event(message, anomaly))
                outcome["anomalies"] = 1
                by_rule[raw["id"]] = 1
                by_severity[anomaly.severity] = by_severity.get(anomaly.severity, 0) + 1
        outcome["duration_ms"] = round((time.perf_counter() - started) * 1000)
        outcomes.append(outcome)
        publisher.publish(topics.scan_events, _progress(message, done, outcome))
    publisher.flush()  # anomalies are on the ledger before the result that counts them
    errors = [f"{o['monitor_name']}: {o['error']}" for o in outcomes if o["stage"] == "failed"]
    base = {"violations_by_rule": by_rule, "violations_by_severity": by_severity, "monitors": outcomes,
            "record_count": table.num_rows if table is not None else 0}  # read, whether a monitor failed or not
    if errors:
        result = _result(message, c.UNIT_FAILED, {**base, "error": "; ".join(errors)})
    else:
        result = _result(message, c.UNIT_COMPLETED, {**base, "rules_done": len(monitors)})
    publisher.publish(topics.scan_events, result)


def anomaly_event(cause: dict, anomaly: Anomaly) -> dict:
    work = cause["data"]
    container = work["target"]["container"]
    vid = deterministic_id("violation", work["scan_id"], work["unit_id"], anomaly.monitor_id)
    return follow(cause, c.VIOLATION_DETECTED, {
        "violation_id": vid,
        "scan_id": work["scan_id"],
        "unit_id": work["unit_id"],
        "rule_id": anomaly.monitor_id,
        "rule_name": anomaly.monitor_name,
        "rule_type": anomaly.monitor_type,
        "severity": anomaly.severity,
        "account": None,
        "record_index": None,
        "record_key": container["name"],
        "value": anomaly.message,
        "window": None,
        "signature": f"{anomaly.monitor_id}:{container['id']}",
        "container_id": container["id"],
        "observed": anomaly.observed,
    }, id=vid, source=SOURCE)


def _progress(cause: dict, done: int, outcome: dict | None) -> dict:
    work = cause["data"]
    attempt = work.get("attempt", 0)
    data = c.UnitProgressed(scan_id=work["scan_id"], unit_id=work["unit_id"], rules_done=done,
                            rules_total=len(work["target"]["monitors"]), attempt=attempt,
                            monitor=outcome).model_dump(exclude_unset=True)
    return follow(cause, c.UNIT_PROGRESSED, data,
                  id=deterministic_id(c.UNIT_PROGRESSED, work["unit_id"], attempt, done), source=SOURCE)


def _result(cause: dict, type_: str, extra: dict) -> dict:
    work = cause["data"]
    attempt = work.get("attempt", 0)
    data = c.MODELS[type_](**{"scan_id": work["scan_id"], "unit_id": work["unit_id"], "attempt": attempt,
                    "violations_by_rule": {}, "violations_by_severity": {}, **extra}).model_dump(exclude_unset=True)
    return follow(cause, type_, data, id=deterministic_id(type_, work["unit_id"], attempt), source=SOURCE)
