"""Scan kinds: everything that differs between a compliance scan, a monitor scan and a sync.

Every scan runs the same lifecycle (services.domain.lifecycle) and is shown by the same read models;
what a kind decides is `Kind` (kinds/base.py: its flags and the rules it may override), and `KINDS`
holds one object per kind. The
rest of the code asks `kind_of(request)` and never compares a kind's name by hand, so a new
kind is one module here and one line in KINDS (and its `kind` in services.domain.contracts).

Everything here is pure (names, `checks`, the work events): lifecycle and the API views
import it. A kind's I/O half, how its scan is planned and how a unit runs, is its entry in
services.runners.
"""
from __future__ import annotations

from services.domain.kinds.base import Kind, Plan
from services.domain.kinds.catalog import CATALOG
from services.domain.kinds.compliance import COMPLIANCE
from services.domain.kinds.monitor import MONITOR
from services.domain.kinds.sensitive import SENSITIVE

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


__all__ = ["CATALOG", "COMPLIANCE", "DEFAULT", "KINDS", "MONITOR", "SENSITIVE", "Kind", "Plan", "asset_run_kinds",
           "delta_kinds", "kind_of", "kinds_of_operation_type"]
