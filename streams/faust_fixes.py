"""Fixes to faust-streaming 0.11–0.15 and aiokafka that lost or stalled units of work.

Each patch replaces one method, says which bug it fixes, and is applied once by
`apply()` before the app is created. The evidence is in docs/decisions.md ("Worker
crash recovery"). In short, after a restart or rebalance:

1. aiokafka's `seek_to_committed` seeks only partitions whose committed offset is > 0, so
   a partition with no commit (or a commit of 0) keeps whatever position the fetcher
   reached while the partition was paused: records fetched before recovery finished and
   thrown away are never read again.
2. Faust's recovery seeks the stream partitions while the fetcher runs, then resumes flow
   control, which clears every agent's queue: records fetched during the seek are dropped
   after the seek, so nothing brings them back.
3. Faust's commit ignores a missing head record: it commits the acked run when its first
   offset is committed+1 (off by one) and never checks a partition with no commit yet. A
   unit in flight, or dropped as in 2, is then committed past and lost for good.
4. Faust's `Consumer.getmany` drops the rest of a fetched batch when the flow stopped (or the
   generation changed, or the partition was paused) while aiokafka's fetch was in flight, but
   aiokafka's position is already past it. A recovery's seek of a changelog partition can
   happen while that fetch is in flight: the records it then returns, all the recovery needs,
   are dropped, and nothing seeks that partition again. Dropped changelog records are now
   fetched again.

With these fixed, a worker commits an offset only once every record before it was acked,
and after a rebalance reads again from exactly that offset.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

log = logging.getLogger("scanledger.streams")
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed
    Consumer.perform_seek = _perform_seek
    Consumer._new_offset = _new_offset
    Consumer.getmany = _getmany
    Recovery.on_recovery_completed = _on_recovery_completed
    Recovery._resume_streams = _resume_streams
    _applied = True


# 1. Seek every stream partition: to its committed offset, or to the log start when it has none.

async def _seek_to_committed(self: AIOKafkaConsumerThread) -> dict:
    consumer = self._ensure_consumer()
    changelogs = self.app.tables.changelog_topics

    async def seek_all() -> dict:
        tps = [tp for tp in consumer.assignment() if tp.topic not in changelogs]
        if not tps:
            return {}
        starts = await consumer.beginning_offsets(tps)
        positions = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            # no commit yet, or one the retention has since deleted: read from the log start
            position = starts[tp] if committed is None or committed < starts[tp] else committed
            consumer.seek(tp, position)
            positions[tp] = position
        return positions

    return await self.call_thread(seek_all)


async def _perform_seek(self: Consumer) -> None:
    positions = await self.seek_to_committed()
    # Faust's bookkeeping: the next offset to read is both the commit point and where reading resumes.
    for tp, position in positions.items():
        self._committed_offset[tp] = position
        self._read_offset[tp] = position - 1 if position > 0 else None
        self._acked[tp] = [o for o in self._acked.get(tp, []) if o >= position]
        self._acked_index[tp] = set(self._acked[tp])


# 3. Commit only a run of acked offsets that starts exactly at the commit point.

def _new_offset(self: Consumer, tp: Any) -> int | None:
    acked = self._acked[tp]
    if not acked:
        return None
    gaps = self._gap[tp]
    if gaps:  # offsets the log skipped (compaction, transaction markers) count as acked
        max_offset = max(acked)
        for interval in sorted(gaps.overlap(0, max_offset), key=lambda i: i.begin):
            acked.extend(range(interval.begin, interval.end))
        gaps.chop(0, max_offset + 1)
    acked.sort()
    committed = self._committed_offset[tp]  # the next offset to read
    if committed is None or acked[0] > committed:
        return None  # the head record is not acked yet (in flight, or never delivered)
    run_end = acked[0]
    for offset in acked:
        if offset > run_end + 1:
            break
        run_end = max(run_end, offset)
    done = [o for o in acked if o <= run_end]
    acked[: len(done)] = []
    self._acked_index[tp].difference_update(done)
    return run_end + 1


# 2. Stop fetching, clear the agents' queues, seek, and only then fetch again.

async def _seek_with_flow_stopped(recovery: Recovery) -> None:
    app, consumer = recovery.app, recovery.app.consumer
    assignment = consumer.assignment()
    consumer.stop_flow()
    app.flow_control.resume()  # clears the queues: anything in them predates the seek
    consumer.resume_partitions({tp for tp in assignment if not recovery._is_changelog_tp(tp)})
    if assignment:
        recovery.log.info("Seek stream partitions to committed offsets.")
        await recovery._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
    consumer.resume_flow()


async def _on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    for table in self.tables.values():
        await table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
    await _start_streams(self, generation_id, standbys_ready=not self.app.assignor.assigned_standbys())


async def _resume_streams(self: Recovery, generation_id: int = 0) -> None:
    """Recovery's path when the app has no tables."""
    await self.app.on_rebalance_complete.send()
    await _start_streams(self, generation_id, standbys_ready=True)


async def _start_streams(recovery: Recovery, generation_id: int, standbys_ready: bool) -> None:
    if recovery.app.consumer_generation_id != generation_id:
        recovery.log.warning("Recovery rebalancing again")
        return
    await _seek_with_flow_stopped(recovery)
    recovery.completed.set()
    await recovery.app._fetcher.maybe_start()
    recovery.tables.on_actives_ready()
    if standbys_ready:
        recovery.tables.on_standbys_ready()
    recovery.app.on_rebalance_end()
    recovery.log.info("Worker ready")


# 4. A changelog record fetched and not handed on is fetched again.

async def _getmany(self: Consumer, timeout: float) -> AsyncIterator[tuple]:
    """Faust's `Consumer.getmany` (round-robin over the partitions of a fetched batch, none handed on once the
    flow stopped or the generation changed), but what it does not hand on of a changelog partition is fetched
    again. A stream partition's is sought to its commit point by the recovery that stopped the flow."""
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    if not self.flow_active:  # fetched while the flow was stopped
        await _refetch(self, {tp: batch[0].offset for tp, batch in records.items() if batch}, "flow stopped")
        try:
            await self.perform_seek()
        except Exception as exc:
            self.log.warning(f"exception performing seek when flow not active {exc}")
        return
    lost: dict = {}  # changelog or stream partition -> offset of its first record not handed on
    stopped = None  # why the rest of the batch is not handed on
    handed = None  # the record handed on last
    for tp, record in self.scheduler.iterate(records):
        if stopped is None and not self.flow_active:
            stopped = "flow stopped"
        elif stopped is None and self.app.consumer_generation_id != generation_id:
            stopped = "generation changed"
        if stopped is None and (active_partitions is None or tp in active_partitions
                                or tp in self._buffered_partitions):
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            handed = tp, record.offset
            yield tp, self._to_message(tp, record)
        else:
            lost.setdefault(tp, record.offset)
    if handed is not None and not self.flow_active:  # the flow stopped during its callback, which it cancels
        tp, offset = handed
        lost[tp] = min(offset, lost.get(tp, offset))
    await _refetch(self, lost, stopped or "partition paused")


async def _refetch(consumer: Consumer, first: dict, why: str) -> None:
    """Seek each changelog partition in `first` back to the first of its records that was fetched and not
    handed on, unless it was sought before that meanwhile (a recovery's seek wins). A changelog record read
    twice is harmless: recovery applies only offsets past the last it applied."""
    first = {tp: offset for tp, offset in first.items() if consumer._is_changelog_tp(tp)}
    if not first or consumer.should_stop:
        return
    client = consumer._thread._ensure_consumer()

    async def seek_back() -> dict:
        sought, subscription = {}, client._subscription.subscription
        for tp, offset in first.items():
            state = subscription.assignment.state_value(tp) if subscription else None
            # not assigned (its next owner reads it) or being reset (a seek that wins): leave it
            if state is not None and state.has_valid_position and state.position > offset:
                sought[tp] = state.position
                client.seek(tp, offset)
        return sought

    for tp, position in (await consumer._thread.call_thread(seek_back)).items():
        read = consumer._read_offset.get(tp)
        if read is not None and read > first[tp]:
            consumer._read_offset[tp] = None  # a later record was handed on: let the earlier ones through
        log.warning("%s[%s]: records %s..%s fetched and not handed on (%s): fetched again",
                    tp.topic, tp.partition, first[tp], position - 1, why)
