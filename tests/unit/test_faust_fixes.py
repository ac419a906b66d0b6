"""The commit rule Faust gets wrong: only a run of acked offsets starting at the commit point commits."""
from collections import defaultdict
from types import SimpleNamespace

from intervaltree import IntervalTree

from streams.faust_fixes import _new_offset


def consumer(committed, acked, gaps=()):
    c = SimpleNamespace(_acked=defaultdict(list), _acked_index=defaultdict(set), _gap=defaultdict(IntervalTree),
                        _committed_offset=defaultdict(lambda: None))
    c._committed_offset["tp"] = committed
    c._acked["tp"] = list(acked)
    c._acked_index["tp"] = set(acked)
    for begin, end in gaps:
        c._gap["tp"].addi(begin, end)
    return c


def test_a_contiguous_run_from_the_commit_point_commits_past_its_end():
    c = consumer(5, [5, 6, 7])
    assert _new_offset(c, "tp") == 8
    assert c._acked["tp"] == [] and c._acked_index["tp"] == set()


def test_the_head_record_in_flight_blocks_the_commit():
    # Faust itself commits 8 here (its check allows a head gap of one), losing offset 5.
    assert _new_offset(consumer(5, [6, 7]), "tp") is None


def test_a_partition_never_committed_commits_nothing_until_the_seek_set_its_start():
    assert _new_offset(consumer(None, [3, 4]), "tp") is None


def test_the_run_stops_at_a_hole_and_keeps_what_follows():
    c = consumer(0, [0, 1, 3])
    assert _new_offset(c, "tp") == 2
    assert c._acked["tp"] == [3]


def test_offsets_the_log_skipped_count_as_acked():
    assert _new_offset(consumer(10, [10, 13], gaps=[(11, 13)]), "tp") == 14
