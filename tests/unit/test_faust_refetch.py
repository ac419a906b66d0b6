"""Faust's getmany drops the rest of a fetched batch once the flow stops, though aiokafka's position is past
it: a changelog partition's dropped records must be fetched again, or a table recovery waits for them for ever.

The consumer is a stand-in for Faust's, with aiokafka's position per partition; Faust's own scheduler orders
the batch. `_drain` hands records on as Faust's `_drain_messages` does: a callback the flow stops during is
cancelled (`wait_first(callback, suspend_flow.wait())`), so its record is not handed on either.
"""
import asyncio
from types import SimpleNamespace

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from streams.faust_fixes import _getmany

CHANGELOG, STREAM = TP("app-scans-changelog", 4), TP("commands", 4)


class Consumer:
    def __init__(self, batch: dict, flow_active: bool = True, active: set | None = None):
        self.batch, self.flow_active, self.should_stop = batch, flow_active, False
        self.position = {tp: records[-1] + 1 for tp, records in batch.items()}  # aiokafka's, once fetched
        self.active = set(batch) if active is None else active
        monitor = SimpleNamespace(track_tp_end_offset=lambda tp, end: None)
        self.app = SimpleNamespace(consumer_generation_id=1, monitor=monitor)
        self.scheduler, self._buffered_partitions, self._read_offset = DefaultSchedulingStrategy(), set(), {}
        self.log, self.seeks_to_committed = SimpleNamespace(warning=lambda *a: None, dev=lambda *a: None), 0
        state = lambda tp: SimpleNamespace(has_valid_position=True, position=self.position[tp])  # noqa: E731
        client = SimpleNamespace(_subscription=SimpleNamespace(subscription=SimpleNamespace(
            assignment=SimpleNamespace(state_value=lambda tp: state(tp) if tp in self.position else None))),
            seek=self.position.__setitem__)
        self._thread = SimpleNamespace(_ensure_consumer=lambda: client, call_thread=lambda fun: fun())

    async def _wait_next_records(self, timeout):
        records = {tp: [SimpleNamespace(offset=o) for o in offsets] for tp, offsets in self.batch.items()}
        return records, self.active

    def highwater(self, tp):
        return self.position[tp]

    def _is_changelog_tp(self, tp):
        return tp.topic.endswith("-changelog")

    def _to_message(self, tp, record):
        return record.offset

    async def perform_seek(self):
        self.seeks_to_committed += 1

    getmany = _getmany


def _drain(consumer: Consumer, stop_after: int | None = None, on_yield=None) -> dict:
    """Run one getmany as `_drain_messages` does: {tp: offsets handed on}. The flow stops during the callback
    of the `stop_after`-th record (counting from 0), which is then cancelled."""
    handed: dict = {}

    async def run():
        n = 0
        async for tp, offset in consumer.getmany(timeout=1.0):
            if on_yield:
                on_yield(consumer, tp, offset)
            if stop_after is not None and n == stop_after:
                consumer.flow_active = False  # stop_flow(): the callback under way is cancelled
            else:
                handed.setdefault(tp, []).append(offset)
            n += 1
    asyncio.run(run())
    return handed


def test_a_changelog_batch_fetched_while_the_flow_was_stopped_is_fetched_again():
    # The stall CI met: recovery sought changelog[4] to 0 while a fetch was in flight; the fetch returned
    # offsets 0..24 (aiokafka's position 25) before recovery resumed the flow, and Faust dropped them all.
    consumer = Consumer({CHANGELOG: list(range(25)), STREAM: [7, 8]}, flow_active=False)
    assert _drain(consumer) == {}
    assert consumer.position[CHANGELOG] == 0
    assert consumer.position[STREAM] == 9 and consumer.seeks_to_committed == 1  # Faust's own seek, as before


def test_a_changelog_batch_cut_by_the_flow_stopping_is_fetched_again_from_the_cancelled_record():
    consumer = Consumer({CHANGELOG: [10, 11, 12, 13]})
    assert _drain(consumer, stop_after=1) == {CHANGELOG: [10]}
    assert consumer.position[CHANGELOG] == 11


def test_a_seek_made_meanwhile_to_before_the_dropped_records_wins():
    def recovery_seeks(consumer, tp, offset):
        consumer.position[CHANGELOG] = 3
    consumer = Consumer({CHANGELOG: [10, 11, 12]})
    _drain(consumer, stop_after=0, on_yield=recovery_seeks)
    assert consumer.position[CHANGELOG] == 3


def test_a_changelog_partition_paused_after_the_fetch_is_fetched_again():
    consumer = Consumer({CHANGELOG: [5, 6]}, active=set())
    assert _drain(consumer) == {}
    assert consumer.position[CHANGELOG] == 5


def test_a_batch_handed_on_whole_moves_nothing():
    consumer = Consumer({CHANGELOG: [0, 1, 2], STREAM: [4, 5]})
    assert _drain(consumer) == {CHANGELOG: [0, 1, 2], STREAM: [4, 5]}
    assert consumer.position == {CHANGELOG: 3, STREAM: 6}


@given(st.lists(st.integers(0, 3), min_size=1, max_size=30).map(lambda gaps: [sum(gaps[:i + 1]) for i in
                                                                                 range(len(gaps))]),
       st.lists(st.integers(0, 5), min_size=1, max_size=10).map(lambda gaps: [sum(gaps[:i + 1]) for i in
                                                                                range(len(gaps))]),
       st.one_of(st.none(), st.integers(0, 40)))
def test_no_changelog_record_is_lost(changelog, stream, stop_after):
    """Every changelog record of the batch is handed on or still ahead of aiokafka's position."""
    changelog, stream = sorted(set(changelog)), sorted(set(stream))
    consumer = Consumer({CHANGELOG: changelog, STREAM: stream})
    handed = _drain(consumer, stop_after=stop_after)
    ahead = {o for o in changelog if o >= consumer.position[CHANGELOG]}
    assert set(changelog) <= set(handed.get(CHANGELOG, [])) | ahead
