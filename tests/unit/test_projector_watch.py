"""What the projector counts as records left to apply when it judges its consumer stuck
(projections/projector.py `lagging`)."""
from projections.projector import lagging


def test_partitions_past_the_stored_offset_are_left_to_apply():
    marks = {("t.events", 0): (0, 10), ("t.events", 1): (0, 5), ("t.events", 2): (0, 0), ("t.cmds", 0): (4, 9)}
    stored = {("t.events", 0): 10, ("t.events", 1): 3}
    assert lagging(stored, marks) == {("t.events", 1): (3, 5), ("t.cmds", 0): (4, 9)}


def test_a_stored_offset_before_the_log_start_counts_from_the_log_start():
    assert lagging({("t", 0): 2}, {("t", 0): (7, 7)}) == {}
    assert lagging({("t", 0): 2}, {("t", 0): (7, 9)}) == {("t", 0): (7, 9)}
