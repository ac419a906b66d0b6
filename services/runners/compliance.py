"""A compliance scan's I/O half (services.runners): splitting its upload into units (each its row
numbers in the upload), and running a unit's rules over its records, publishing what it finds.

The coordinator and the evaluator call these in a worker thread; the decisions themselves are
in services.domain.planning and services.domain.evaluation.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from services.adapters.blobstore import BlobStore, BlobUnavailable
from services.adapters.kafka import Publisher
from services.adapters.readers import ipc_buffer, mapped_ipc
from services.domain.contracts import VIOLATION_DETECTED
from services.domain.evaluation import encoded_violations, evaluate_unit, progress_event, unit_result_event
from services.domain.kinds import Plan
from services.domain.planning import ROW, numbers_of, plan, unit_table
from services.domain.rules import parse_rule
from services.settings import Settings

log = logging.getLogger("scanledger.units")


def plan_upload(request: dict, blobs: BlobStore, settings: Settings) -> Plan:
    """A compliance scan: split its upload into units, each unit's row numbers a blob; return the unit plans."""
    upload_blob, mapping = request["upload"]["blob"], request["mapping"]["mapping"]
    table = mapped_ipc(blobs.path(upload_blob))
    rules = [parse_rule(r) for r in request["policy"]["rules"]]
    numbers = numbers_of(table, mapping)
    slices = plan(table, rules, mapping, settings.unit_records, settings.work_partitions)
    return Plan([{
        "unit_id": f"{request['scan_id']}.u{s.index}",
        "index": s.index,
        "blob": upload_blob,
        "rows": blobs.put(memoryview(ipc_buffer(pa.table({ROW: s.rows})))),
        "numbers": numbers,
        "record_count": len(s.rows),
        "counted_records": len(s.rows) if s.counts_records else 0,
        "partition_key": list(s.partition_key),
        "rule_ids": s.rule_ids,
    } for s in slices])


def unit_records(work: dict, blobs: BlobStore) -> pa.Table:
    """A unit's records: its rows of the upload, or (a unit planned before units were row numbers) its own
    table."""
    if work.get("rows") is None:
        return mapped_ipc(blobs.path(work["blob"]))
    rows = mapped_ipc(blobs.path(work["rows"])).column(ROW).combine_chunks()
    return unit_table(mapped_ipc(blobs.path(work["blob"])), rows, work.get("numbers") or [])


# Violations are published in slices of this many, checking for an abort between slices.
STOP_CHECK_ROWS = 2000


class Aborted(Exception):
    """The unit's scan was aborted: stop now; what was published stays."""


def run_unit(message: dict, blobs: BlobStore, publisher: Publisher, settings: Settings,
             should_stop: Callable[[], bool] = lambda: False) -> None:
    """Evaluate a compliance unit: violations first, flushed, then the unit result that counts them."""
    work = message["data"]
    topics = settings.topics
    by_rule: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    errors: list[str] = []
    unevaluated: dict[str, dict] = {}
    rules_done = 0
    try:
        table = unit_records(work, blobs)
        for outcome in evaluate_unit(table, work):
            rules_done += 1
            if outcome.error:
                errors.append(outcome.error)
            else:
                found = outcome.violations.num_rows
                for start in range(0, found, STOP_CHECK_ROWS):
                    if should_stop():
                        raise Aborted
                    publisher.publish_encoded(topics.violations, encoded_violations(
                        message, work, outcome.rule, outcome.violations.slice(start, STOP_CHECK_ROWS)),
                        VIOLATION_DETECTED, message["subject"])
                by_rule[outcome.rule.id] = found
                by_severity[outcome.rule.severity] = by_severity.get(outcome.rule.severity, 0) + found
                if outcome.unevaluated is not None:
                    unevaluated[outcome.rule.id] = {"count": outcome.unevaluated.count,
                                                    "rows": outcome.unevaluated.rows}
            publisher.publish(topics.scan_events, progress_event(message, work, rules_done))
            if should_stop():
                raise Aborted
    except Aborted:
        log.info("unit %s stopped: its scan was aborted", work["unit_id"])
        publisher.flush()
        return
    except BlobUnavailable:  # the store did not answer: the unit runs again later (streams/record_handling.py)
        raise
    except Exception as exc:  # unreadable unit file, bad rule snapshot: a unit failure, never a dead worker
        log.exception("unit %s failed", work["unit_id"])
        errors.append(f"unit {work['unit_id']}: {exc}")
    publisher.flush()
    publisher.publish(topics.scan_events, unit_result_event(message, work, by_rule, by_severity, errors, rules_done,
                                                            unevaluated))
    publisher.flush()
