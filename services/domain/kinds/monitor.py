"""A monitor scan (seed 000): every enabled monitor of a workspace, one unit per asset.

A monitor scan needs no splitting: each target (a container with its monitors) is one unit,
which reads the container and runs its monitors (services.runners.targets). Syncs share the
target units and work (services.domain.kinds.catalog).
"""
from __future__ import annotations

from services.domain import contracts as c
from services.domain.envelope import deterministic_id, follow
from services.domain.kinds.base import Kind
from services.domain.vocabulary import COORDINATOR_SOURCE


def target_units(request: dict) -> list[dict]:
    """One unit per target container; its `rule_ids` are the target's monitor ids."""
    return [{
        "unit_id": f"{request['scan_id']}.u{i}",
        "index": i,
        "blob": "",
        "record_count": 0,
        "counted_records": 0,
        "partition_key": [],
        "rule_ids": [m["id"] for m in target["monitors"]],
        "container": target["container"],
    } for i, target in enumerate(request["targets"])]


def target_work(cause: dict, request: dict, units: list[dict], attempt: int = 0) -> list[dict]:
    """Each unit's work: its target (container, datastore, monitors) from the request snapshot."""
    return [follow(cause, c.WORK_UNIT, c.WorkUnit(
        scan_id=request["scan_id"],
        unit_id=unit["unit_id"],
        index=unit["index"],
        kind=request["kind"],
        attempt=attempt,
        record_count=0,
        counted_records=0,
        target=request["targets"][unit["index"]],
    ).model_dump(exclude_unset=True), id=deterministic_id(c.WORK_UNIT, unit["unit_id"], attempt),
        source=COORDINATOR_SOURCE) for unit in units]


class Monitor(Kind):

    def checks(self, request: dict) -> list[dict]:
        """The monitors of every target."""
        return [m for t in request.get("targets") or [] for m in t["monitors"]]

    def work(self, cause: dict, request: dict, units: list[dict], attempt: int = 0) -> list[dict]:
        return target_work(cause, request, units, attempt)


MONITOR = Monitor(name="monitor", label="monitor scan", asset_runs=True)
