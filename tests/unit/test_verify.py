"""Tamper evidence (services.domain.ledger_chain, services.audit.verify) on a scan's records in process:
the chains hold on the ledger as written, and a byte changed in any record, a record removed, or a
command altered fails the scan naming that record."""
from __future__ import annotations

import orjson
import pytest

from services.audit.verify import LogRecord, check
from services.domain import contracts as c
from services.domain.envelope import encode, make_event
from services.domain.ledger_chain import Chain, digest, unit_stream

SCAN = "s1"


def event(type_, data, id_, t="2024-01-01T00:00:00.000Z"):
    return make_event(type_, SCAN, {"scan_id": SCAN, **data}, id=id_, source="test", workspace_id="w", time=t)


class Log:
    """A scan's records as their writers write them: the API's command, the coordinator's chain, a unit's."""

    def __init__(self):
        self.raws: list[tuple[str, bytes]] = []

    def append(self, topic, raw):
        self.raws.append((topic, raw))
        return raw

    def records(self, change=None) -> list[LogRecord]:
        out, offsets = [], {}
        for i, (topic, raw) in enumerate(self.raws):
            if change and i == change[0]:
                raw = change[1](raw)
            if raw is None:
                continue
            offsets[topic] = offsets.get(topic, -1) + 1
            try:
                ev, err = orjson.loads(raw), None
            except orjson.JSONDecodeError as exc:
                ev, err = None, str(exc)
            out.append(LogRecord(topic, 0, offsets[topic], digest(raw), ev, err))
        return out


@pytest.fixture
def log() -> Log:
    log, coord, unit = Log(), Chain(SCAN), Chain(unit_stream(f"{SCAN}.u0", 0))
    run = log.append("commands", encode(event(c.RUN_SCAN, {"kind": "compliance"}, "cmd-1")))
    coord.cover("cmd-1", digest(run))
    log.append("scan-events", coord.seal(event(c.SCAN_REQUESTED, {}, "e-1")))
    log.append("scan-events", coord.seal(event(c.SCAN_STARTED, {}, "e-2")))
    for i in range(3):
        log.append("violations", unit.seal(event(c.VIOLATION_DETECTED, {"violation_id": f"v{i}", "value": 100 + i},
                                                 f"v{i}")))
    result = log.append("scan-events", unit.seal(event(c.UNIT_COMPLETED, {"unit_id": f"{SCAN}.u0"}, "r-1")))
    coord.cover("r-1", digest(result))
    log.append("scan-events", coord.seal(event(c.SCAN_FINISHED, {"status": "completed"}, "e-3")))
    return log


def test_the_chains_hold_on_the_ledger_as_written(log):
    report = check(SCAN, log.records())
    assert report.ok, report.problems
    assert report.verified == report.records == 8 and not report.unvouched
    assert report.head == digest(log.raws[-1][1])


@pytest.mark.parametrize("index, named", [(4, "v1"), (3, "v0"), (5, "v2"), (6, "r-1"), (0, "cmd-1"), (2, "e-2"),
                                          (1, "e-1")])
def test_a_byte_changed_in_any_record_but_the_head_fails_the_scan_naming_that_record(log, index, named):
    def one_byte(raw: bytes) -> bytes:  # still JSON, still the same event id: only a digit differs
        at = raw.index(b'"time":"2024') + len(b'"time":"202')
        return raw[:at] + b"5" + raw[at + 1:]

    report = check(SCAN, log.records(change=(index, one_byte)))
    assert not report.ok
    assert f" {named} at " in report.first_problem, report.problems


def test_a_removed_record_and_an_unreadable_one_are_named(log):
    removed = check(SCAN, log.records(change=(4, lambda raw: None)))
    assert not removed.ok and "missing" in removed.first_problem
    garbled = check(SCAN, log.records(change=(4, lambda raw: raw[:-1])))
    assert not garbled.ok and "not a readable event" in garbled.first_problem


def test_a_second_copy_with_other_data_is_a_problem_an_identical_one_is_not(log):
    first = orjson.loads(log.raws[3][1])
    log.raws.insert(4, ("violations", encode({**first, "time": "2024-01-01T00:00:09.000Z"})))  # re-sent
    assert check(SCAN, log.records()).ok
    log.raws.insert(4, ("violations", encode({**first, "data": {**first["data"], "value": 999}})))
    report = check(SCAN, log.records())
    assert not report.ok and "copy of a chained event with other data" in report.first_problem


def test_records_no_chain_reaches_are_unvouched_not_failures(log):
    log.append("commands", encode(event(c.ABORT_SCAN, {"requested_by": "x"}, "cmd-late")))  # rejected: not covered
    report = check(SCAN, log.records())
    assert report.ok and [r.event["id"] for r in report.unvouched] == ["cmd-late"]
