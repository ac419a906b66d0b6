"""The coordinator: one scan's commands and unit reports in, lifecycle events and work out.

Every decision is made in services.domain.lifecycle; this class does the I/O around it. It keeps
one state per scan id in `scans` (the Faust table in a worker, a dict in the tests), plans
a scan with `plan(request)` (in a worker thread) and writes through `publisher`
(`publish(topic, event, key=None)` and `await flush_async()`).

The order is the recovery guarantee: events are published, then flushed, and only then is
the scan's state written. A command retried after a failed flush finds the old state and
emits the same events again (their ids are deterministic); one that found the new state
would emit nothing and lose them.

Planning reads and writes the blob store: a store that does not answer (`BlobUnavailable`: S3
down) is waited for, planning again with backoff, so an outage delays the scan and never fails it
(the scan's other commands on this partition wait behind it, as they would behind a long plan).

`reoffer_round` is the silent-unit watchdog (services.domain.watchdog.Reoffers): the work of a
pending unit with no sign of life is sent again, and a unit offered too often fails so
that its scan can end; a unit queued in a work partition with records left, while the
work topic is being consumed, is left to wait (WorkMotion). It looks only at scans in the
command partitions this worker owns.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, MutableMapping

from confluent_kafka import KafkaException

from services.adapters.blobstore import BlobUnavailable
from services.adapters.kafka import DeliveryFailed
from services.domain import contracts as c
from services.domain import lifecycle
from services.domain.envelope import utcnow
from services.domain.evaluation import unit_result_event
from services.domain.kinds import kind_of
from services.domain.ledger_chain import Chain
from services.domain.watchdog import Reoffers, WorkMotion
from services.settings import Topics

log = logging.getLogger("scanledger.streams")
PLAN_RETRY_MAX_S = 10.0


class Coordinator:
    def __init__(self, scans: MutableMapping, publisher, plan: Callable[[dict], list[dict]], reoffers: Reoffers,
                 topics: Topics, partition_of: Callable[[str], int], work_partition_of: Callable[[str], int],
                 now: Callable[[], str] = utcnow, clock: Callable[[], float] = time.monotonic,
                 plan_retry_max_s: float = PLAN_RETRY_MAX_S) -> None:
        self.scans, self.publisher, self.plan, self.reoffers = scans, publisher, plan, reoffers
        self.plan_retry_max_s = plan_retry_max_s
        self.topics, self.partition_of, self.now, self.clock = topics, partition_of, now, clock
        self.work_partition_of = work_partition_of  # a unit id -> the work partition its work is in
        self.motion = WorkMotion(reoffers.after_s)
        self._handlers = {
            c.RUN_SCAN: self._run_scan, c.CHANGE_VIOLATION_STATUS: self._change_violation_status,
            c.UNIT_COMPLETED: self._unit_done, c.UNIT_FAILED: self._unit_done,
            c.UNIT_PROGRESSED: self._unit_progressed,
            c.ABORT_SCAN: self._operator_command, c.RESUME_SCAN: self._operator_command,
            c.DELETE_SCAN: self._operator_command,
        }

    def handles(self, type_: str | None) -> bool:
        """Whether a message of this type is the coordinator's (violation progress etc. is not)."""
        return type_ in self._handlers

    async def handle(self, message: dict, digest: str = "") -> None:
        """Handle a consumed message; `digest`: its record's (services.domain.ledger_chain), which the
        next event of its scan names, so the scan's chain vouches for what it acted on."""
        handler = self._handlers.get(message["type"])
        if handler is not None:
            await handler(message, digest)

    # -- the messages ----------------------------------------------------------------------------

    async def _run_scan(self, message: dict, digest: str) -> None:
        scan_id = message["subject"]
        state, events = lifecycle.request(self.scans.get(scan_id), message)
        chain = _chain(state, message, digest)
        self._emit(state, events, chain)
        if state["status"] == "queued":
            try:
                plan = await self._plan(message)
            except Exception as exc:  # unreadable data: the scan fails, the worker does not
                log.exception("planning scan %s failed", scan_id)
                state, events = lifecycle.fail(state, message, f"could not plan the scan: {exc}", self.now())
                self._emit(state, events, chain)
            else:
                state, events, work = lifecycle.start(state, message, plan.units, self.now(), plan.enumeration)
                self._emit(state, events, chain)
                await self._send_work_after(message, message["data"], work, 0, state, chain)
        await self._commit(scan_id, state)

    async def _plan(self, message: dict):
        """The scan's plan, once the blob store answers: planning is retried while it does not."""
        delay = min(0.5, self.plan_retry_max_s)
        while True:
            try:
                return await asyncio.to_thread(self.plan, message["data"])
            except BlobUnavailable as exc:
                log.warning("the blob store did not answer planning scan %s, retrying in %.1fs: %s",
                            message["subject"], delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.plan_retry_max_s)

    async def _operator_command(self, message: dict, digest: str) -> None:
        """Abort, resume or delete: rejected ones are logged (the API checked the state before)."""
        scan_id, type_ = message["subject"], message["type"]
        state = self.scans.get(scan_id)
        try:
            if type_ == c.RESUME_SCAN:
                state, events, work = lifecycle.resume(state, message, self.now())
            else:
                act = lifecycle.abort if type_ == c.ABORT_SCAN else lifecycle.delete
                (state, events), work = act(state, message, self.now()), []
        except lifecycle.Rejected as exc:
            log.warning("rejected %s for scan %s: %s", type_, scan_id, exc)
            return
        chain = _chain(state, message, digest)
        self._emit(state, events, chain)
        if work:
            await self._send_work_after(message, state["request"], work, state["attempt"], state, chain)
        await self._commit(scan_id, state)

    async def _unit_done(self, message: dict, digest: str) -> None:
        scan_id = message["subject"]
        self.reoffers.reported(scan_id, message["data"]["unit_id"], self.clock())
        state = self.scans.get(scan_id)
        if state is None:
            return
        state, events = lifecycle.unit_done(state, message, self.now())
        self._emit(state, events, _chain(state, message, digest))  # covered even when it ends nothing yet
        await self._commit(scan_id, state)

    async def _unit_progressed(self, message: dict, _digest: str) -> None:
        self.reoffers.seen(message["subject"], message["data"]["unit_id"], self.clock())

    async def _change_violation_status(self, message: dict, digest: str) -> None:
        scan_id = message["subject"]
        try:
            state, events = lifecycle.change_violation_status(self.scans.get(scan_id), message, message["time"])
        except lifecycle.Rejected as exc:
            log.warning("rejected %s for scan %s: %s", message["type"], scan_id, exc)
            return
        self._emit(state, events, _chain(state, message, digest))
        await self._commit(scan_id, state)

    # -- the silent-unit watchdog ----------------------------------------------------------------

    async def reoffer_round(self, owned_partitions: Collection[int], work_lag: dict[int, tuple[int, int]]) -> None:
        """Send again the work of units that show no sign of life; fail one that never does.

        `work_lag`: work partition -> (committed, end) for the stream group's partitions with
        records left (services.adapters.kafka_admin.group_lag)."""
        now = self.clock()
        self.motion.observe(now, work_lag)
        owned = [state for scan_id, state in list(self.scans.items())
                 if state and state["status"] == "running" and self.partition_of(scan_id) in owned_partitions]
        for state in owned:
            for unit_id in kind_of(state["request"]).overdue(state, self.now(), self.reoffers.after_s):
                log.warning("unit %s: its scan's timeout passed with no worker on it; failing it", unit_id)
                self._fail(state, unit_id, "the scan's timeout passed before a worker scanned this chunk")
        running = [s for s in owned if not kind_of(s["request"]).external(s["request"])]  # BYOC: leases, in the API
        max_offers = self.reoffers.max_offers

        def waiting(unit_id: str) -> bool:
            return self.motion.queued(self.work_partition_of(unit_id), now)

        for action, state, unit_id in self.reoffers.due(running, now, waiting):
            if action == "fail":
                log.error("unit %s: no worker reported after %d offers; failing it", unit_id, max_offers)
                self._fail(state, unit_id, f"no worker reported on the unit after {max_offers} offers")
            else:
                log.warning("unit %s: no sign of life for %.0fs; offering it again", unit_id, self.reoffers.after_s)
                self.publisher.publish(self.topics.work, self._work(state, unit_id), key=unit_id)
        try:
            await self.publisher.flush_async()
        except (DeliveryFailed, KafkaException) as exc:  # the broker is away: offered again next round
            log.warning("could not offer units again: %s", exc)

    def _work(self, state: dict, unit_id: str) -> dict:
        """A pending unit's work event again (the same id: a duplicate of it is harmless)."""
        unit = state["units"][unit_id]
        cause = {"id": f"reoffer:{unit_id}", "subject": state["scan_id"], "workspaceid": state["workspace_id"],
                 "correlationid": state["scan_id"]}
        [work] = kind_of(state["request"]).work(cause, state["request"], [unit["plan"]], unit["attempt"])
        return work

    def _fail(self, state: dict, unit_id: str, error: str) -> None:
        """The unit's failure, as a worker would report it: it comes back here and may end the scan."""
        work = self._work(state, unit_id)
        self.publisher.publish(self.topics.scan_events, unit_result_event(work, work["data"], {}, {}, [error], 0))

    # -- writing ---------------------------------------------------------------------------------

    def _emit(self, state: dict, events: list[dict], chain: Chain) -> None:
        """The scan's events on the ledger as the next links of its chain, which the state keeps."""
        for event in events:
            self.publisher.publish_sealed(self.topics.scan_events, event, chain)
        state["chain"] = chain.as_dict()

    async def _send_work_after(self, cause: dict, request: dict, units: list[dict], attempt: int, state: dict,
                               chain: Chain) -> None:
        """The units' work, once the events that start them (scan.started, scan.resumed) are on the ledger.

        A worker's report of a unit goes to the scan's partition from another producer: were the work
        sent with the start still in this producer's buffer, the report could land before the start, and
        the projector, which creates the units' rows on scan.started (resets them on scan.resumed), would
        leave a unit it had seen complete pending for good (bench/chaos.py found a sync's unit so)."""
        await self.publisher.flush_async()
        self._send_work(cause, request, units, attempt, state, chain)

    def _send_work(self, cause: dict, request: dict, units: list[dict], attempt: int, state: dict,
                   chain: Chain) -> None:
        now = self.clock()
        for unit_event in kind_of(request).work(cause, request, units, attempt):
            if unit_event["type"] == c.CHUNK_OFFERED:  # an external worker's: claimed through the API, leased there
                self._emit(state, [unit_event], chain)
                continue
            self.publisher.publish(self.topics.work, unit_event, key=unit_event["data"]["unit_id"])
            self.reoffers.seen(request["scan_id"], unit_event["data"]["unit_id"], now)

    async def _commit(self, scan_id: str, state: dict) -> None:
        """The events are on the ledger before the state that follows from them is written."""
        await self.publisher.flush_async()
        self.scans[scan_id] = state


def _chain(state: dict, message: dict, digest: str) -> Chain:
    """The scan's chain as its state keeps it (a new one for a new scan), naming the message it acts on."""
    chain = Chain.from_dict(state["chain"]) if state.get("chain") else Chain(state["scan_id"])
    if digest:
        chain.cover(message["id"], digest)
    return chain
