"""A sync (a catalog run): profile every container of a datastore, one unit per container.

It checks nothing (its targets carry no monitors); its finding is each container's profile
(columns and row count). A sync is not resumed: it is cheap to rerun, and a rerun sees the
datastore as it is now.
"""
from __future__ import annotations

from services.domain.kinds.base import Kind
from services.domain.kinds.monitor import target_work


class Catalog(Kind):

    def checks(self, request: dict) -> list[dict]:
        return [m for t in request.get("targets") or [] for m in t["monitors"]]  # none: a sync only profiles

    def work(self, cause: dict, request: dict, units: list[dict], attempt: int = 0) -> list[dict]:
        return target_work(cause, request, units, attempt)


CATALOG = Catalog(name="catalog", label="sync", operation_type="catalog", resumable=False)
