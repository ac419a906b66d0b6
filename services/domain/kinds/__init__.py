"""Scan kinds: everything that differs between a compliance scan, a monitor scan and a sync.

Every scan runs the same lifecycle (services.domain.lifecycle) and is shown by the same read models;
what a kind decides is the `Kind` protocol below, and `KINDS` holds one object per kind. The
rest of the code asks `kind_of(request)` and never compares a kind's name by hand, so a new
kind is one module here and one line in KINDS (and its `kind` in services.domain.contracts).

Everything here is pure (names, `checks`, the work events): lifecycle and the API views
import it. A kind's I/O half, how its scan is planned and how a unit runs, is its entry in
services.runners.
"""
from __future__ import annotations

from typing import Protocol

from services.domain.kinds.catalog import CATALOG
from services.domain.kinds.compliance import COMPLIANCE
from services.domain.kinds.monitor import MONITOR
from services.domain.kinds.sensitive import SENSITIVE


class Kind(Protocol):
    name: str            # the `kind` on the ledger: ScanRequest, WorkUnit, rm_scans.kind
    label: str           # what a message calls one run of it ("a sync cannot be resumed")
    operation_type: str  # its `type` in the Activity list (seed 003)
    scan_id_prefix: str  # how its scan ids begin ("scan-" for seed 004's, as in its "scan-par-001")
    resumable: bool      # an aborted or failed run can continue its remaining units (else: rerun it)
    asset_runs: bool     # its units are the per-asset runs of the Monitor Dashboard (seed 000)
    has_delta: bool      # a completed run gets a delta against the previous run of its policy (seed 001)

    def checks(self, request: dict) -> list[dict]:
        """What the scan evaluates: rule or monitor snapshots, each with an id and a severity."""

    def work(self, cause: dict, request: dict, units: list[dict], attempt: int = 0) -> list[dict]:
        """The work.unit events of `units`; `cause` is the RunScan or ResumeScan command."""


KINDS: dict[str, Kind] = {k.name: k for k in (COMPLIANCE, MONITOR, CATALOG, SENSITIVE)}
DEFAULT = COMPLIANCE.name  # what has no `kind`: a compliance work unit (its work names none), an older request


def kind_of(message_data: dict) -> Kind:
    """The kind of a scan request, a work unit or a scan's state (anything with a `kind`)."""
    return KINDS[message_data.get("kind") or DEFAULT]


def kinds_of_operation_type(operation_type: str) -> tuple[str, ...]:
    """The kinds an Activity-list `type` filter selects (none for a type no kind has)."""
    return tuple(k.name for k in KINDS.values() if k.operation_type == operation_type)


def asset_run_kinds() -> tuple[str, ...]:
    return tuple(k.name for k in KINDS.values() if k.asset_runs)


def delta_kinds() -> tuple[str, ...]:
    return tuple(k.name for k in KINDS.values() if k.has_delta)


__all__ = ["CATALOG", "COMPLIANCE", "DEFAULT", "KINDS", "MONITOR", "SENSITIVE", "Kind", "asset_run_kinds",
           "delta_kinds", "kind_of", "kinds_of_operation_type"]
