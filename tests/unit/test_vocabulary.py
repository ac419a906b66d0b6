"""The shared words: each Literal and its tuple list the same values."""
from typing import get_args

from services.domain import vocabulary as v


def test_the_literals_and_the_tuples_agree():
    assert get_args(v.Status) == v.STATUSES
    assert get_args(v.TerminalStatus) == v.TERMINAL
    assert get_args(v.Severity) == v.SEVERITIES
    assert set(v.FINISHED) == set(v.TERMINAL) | {v.ABORTED}
    assert set(v.IN_FLIGHT) | set(v.FINISHED) == set(v.STATUSES)
    assert v.sql_list(v.IN_FLIGHT) == "('queued', 'running')"
