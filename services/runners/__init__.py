"""Each scan kind's I/O half: how its scan is planned and how one of its units runs.

services.domain.kinds holds what is pure about a kind (its names, checks and work events);
planning reads the blob store or nothing, running reads blobs or datastores and publishes,
so those halves live here and the domain never imports an adapter. A new kind adds its
module to services/domain/kinds and one line to IO (a unit test holds IO to KINDS).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.adapters.blobstore import BlobStore
from services.adapters.kafka import Publisher
from services.domain.kinds import CATALOG, COMPLIANCE, MONITOR, SENSITIVE, Plan, kind_of
from services.domain.kinds.monitor import target_units
from services.runners import compliance, sensitive, targets
from services.settings import Settings


@dataclass(frozen=True)
class KindIO:
    plan: Callable[[dict, BlobStore, Settings], Plan]  # the unit plans, writing any unit data to the blob store
    run: Callable[[dict, BlobStore, Publisher, Settings, Callable[[], bool]], None]  # publishes, flushes


def _one_unit_per_target(request: dict, _blobs: BlobStore, _settings: Settings) -> Plan:
    return Plan(target_units(request))


IO: dict[str, KindIO] = {
    COMPLIANCE.name: KindIO(plan=compliance.plan_upload, run=compliance.run_unit),
    MONITOR.name: KindIO(plan=_one_unit_per_target, run=targets.run_monitor_unit),
    CATALOG.name: KindIO(plan=_one_unit_per_target, run=targets.run_catalog_unit),
    SENSITIVE.name: KindIO(plan=sensitive.plan_sensitive, run=sensitive.run_chunk),
}


def plan_scan(request: dict, blobs: BlobStore, settings: Settings) -> Plan:
    """The scan's unit plans, writing any unit data to the blob store."""
    return IO[kind_of(request).name].plan(request, blobs, settings)


def run_work(message: dict, blobs: BlobStore, publisher: Publisher, settings: Settings,
             should_stop: Callable[[], bool] = lambda: False) -> None:
    """Run one work unit of any kind: publish its findings, progress and result (flushed)."""
    IO[kind_of(message["data"]).name].run(message, blobs, publisher, settings, should_stop)
