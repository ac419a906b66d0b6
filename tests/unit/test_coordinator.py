"""The coordinator without Kafka or Faust: a dict as its table, a recording publisher as its sink."""
import asyncio

from services.adapters.blobstore import BlobMissing, BlobUnavailable
from services.adapters.kafka import DeliveryFailed
from services.domain import contracts as c
from services.domain.envelope import make_event
from services.domain.kinds import Plan
from services.domain.kinds.sensitive import chunks
from services.domain.watchdog import Reoffers
from services.settings import Settings
from streams.coordinator import Coordinator

TOPICS = Settings().topics
RULES = [{"id": "r1", "name": "big", "type": "threshold", "severity": "high", "active": True,
          "params": {"field": "amount", "op": "gt", "value": 10}}]
AFTER_S = 60.0


class Recorder:
    """The publisher's edge: what was published where, and each flush, in one ordered log."""

    def __init__(self, log):
        self.log = log
        self.fail_flushes = 0

    def publish(self, topic, event, key=None):
        self.log.append(("publish", topic, key or event["subject"], event))

    def publish_sealed(self, topic, event, chain, key=None):
        chain.seal(event)
        self.publish(topic, event, key)

    async def flush_async(self, timeout=60):
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise DeliveryFailed("1 messages undelivered")
        self.log.append(("flush",))

    def published(self, topic=None):
        return [entry[3] for entry in self.log if entry[0] == "publish" and topic in (None, entry[1])]


class Table(dict):
    """A dict that writes its writes into the same log, so their order against flushes shows."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def __setitem__(self, key, value):
        self.log.append(("table", key, value["status"]))
        super().__setitem__(key, value)


class Setup:
    def __init__(self, units=2, plan_error=None, owned_by=0, plan_errors=()):
        self.log = []
        self.publisher = Recorder(self.log)
        self.scans = Table(self.log)
        self.planned = []
        self.now = 0.0
        self.reoffers = Reoffers(AFTER_S, max_offers=3)

        def plan(request):
            self.planned.append(request["scan_id"])
            if plan_error:
                raise plan_error
            if len(self.planned) <= len(plan_errors):  # the first plans meet these, in turn
                raise plan_errors[len(self.planned) - 1]
            return Plan([{"unit_id": f"{request['scan_id']}.u{i}", "index": i, "blob": f"b{i}", "record_count": 50,
                          "counted_records": 50, "partition_key": [], "rule_ids": ["r1"]} for i in range(units)])

        self.coordinator = Coordinator(self.scans, self.publisher, plan, self.reoffers, TOPICS,
                                       partition_of=lambda scan_id: owned_by,
                                       work_partition_of=lambda unit_id: int(unit_id.rsplit(".u", 1)[1]),
                                       now=lambda: "2024-01-01T00:00:01Z", clock=lambda: self.now,
                                       plan_retry_max_s=0.001)
        self.work_lag = {}  # work partition -> (committed, end): unit sN.uI is in partition I

    def handle(self, message):
        asyncio.run(self.coordinator.handle(message))

    def reoffer_round(self, owned=(0,)):
        asyncio.run(self.coordinator.reoffer_round(set(owned), self.work_lag))

    def new_entries(self, since):
        return self.log[since:]


def run_scan(scan_id="s1"):
    data = {"scan_id": scan_id, "kind": "compliance", "workspace_id": "w", "requested_by": "me",
            "requested_at": "2024-01-01T00:00:00.000Z", "policy": {"id": "p", "name": "P", "rules": RULES},
            "upload": {"id": "u", "blob": "b", "record_count": 100, "columns": ["a"]},
            "mapping": {"id": "m", "mapping": {"amount": "Amount"}, "temporal_scale": "daily"}}
    return make_event(c.RUN_SCAN, scan_id, data, id=f"cmd-{scan_id}", source="test", workspace_id="w")


def operator(type_, scan_id="s1", n=1):
    return make_event(type_, scan_id, {"scan_id": scan_id, "requested_by": "op"}, id=f"{type_}-{n}",
                      source="test", workspace_id="w")


def unit_done(unit_id, found=1, scan_id="s1", attempt=0):
    data = {"scan_id": scan_id, "unit_id": unit_id, "attempt": attempt, "violations_by_rule": {"r1": found},
            "violations_by_severity": {"high": found}, "record_count": 50, "rules_done": 1}
    return make_event(c.UNIT_COMPLETED, scan_id, data, id=f"done-{unit_id}-{attempt}", source="test",
                      workspace_id="w")


def progressed(unit_id, scan_id="s1"):
    data = {"scan_id": scan_id, "unit_id": unit_id, "rules_done": 0, "rules_total": 1}
    return make_event(c.UNIT_PROGRESSED, scan_id, data, id=f"p-{unit_id}", source="test", workspace_id="w")


def types(events):
    return [e["type"] for e in events]


def test_a_scan_runs_its_units_and_the_table_is_written_after_the_flush():
    s = Setup(units=2)
    s.handle(run_scan())
    assert types(s.publisher.published(TOPICS.scan_events)) == [c.SCAN_REQUESTED, c.SCAN_STARTED]
    work = s.publisher.published(TOPICS.work)
    assert [w["data"]["unit_id"] for w in work] == ["s1.u0", "s1.u1"]
    assert [w["data"]["attempt"] for w in work] == [0, 0]
    assert [entry[2] for entry in s.log if entry[0] == "publish" and entry[1] == TOPICS.work] == ["s1.u0", "s1.u1"]
    assert [entry[0] for entry in s.log[-2:]] == ["flush", "table"]  # events on the ledger, then the state
    assert s.scans["s1"]["status"] == "running"
    assert sorted(s.scans["s1"]["units"]) == ["s1.u0", "s1.u1"]


def test_a_failed_flush_leaves_the_table_alone_so_a_retry_emits_the_same_events():
    s = Setup(units=1)
    s.publisher.fail_flushes = 1
    try:
        s.handle(run_scan())
    except DeliveryFailed:
        pass
    else:
        raise AssertionError("the failed flush was swallowed")
    assert "s1" not in s.scans and not any(entry[0] == "table" for entry in s.log)
    first = [e["id"] for e in s.publisher.published()]
    assert s.publisher.published(TOPICS.work) == []  # the flush before the work failed: no work went out
    s.log.clear()
    s.handle(run_scan())  # the record pipeline runs the command again
    assert [e["id"] for e in s.publisher.published(TOPICS.scan_events)] == first
    assert len(s.publisher.published(TOPICS.work)) == 1
    assert s.scans["s1"]["status"] == "running"


def test_work_goes_out_only_once_the_start_and_the_resume_are_flushed():
    """A unit's report (another producer's) must not land on the scan's partition before the event that
    starts the unit, or the projector would create (or reset) the unit's row after its completion."""
    s = Setup(units=2)
    s.handle(run_scan())
    kinds = [e[0] if e[0] != "publish" else e[3]["type"] for e in s.log]
    assert kinds.index(c.SCAN_STARTED) < kinds.index("flush") < kinds.index(c.WORK_UNIT)
    s.handle(unit_done("s1.u0"))
    s.handle(operator(c.ABORT_SCAN))
    mark = len(s.log)
    s.handle(operator(c.RESUME_SCAN, n=2))
    kinds = [e[0] if e[0] != "publish" else e[3]["type"] for e in s.new_entries(mark)]
    assert kinds.index(c.SCAN_RESUMED) < kinds.index("flush") < kinds.index(c.WORK_UNIT)


def test_a_planning_failure_fails_the_scan():
    s = Setup(plan_error=ValueError("not a CSV"))
    s.handle(run_scan())
    events = s.publisher.published(TOPICS.scan_events)
    assert types(events) == [c.SCAN_REQUESTED, c.SCAN_FINISHED]
    assert events[1]["data"]["status"] == "failed"
    assert events[1]["data"]["error"] == "could not plan the scan: not a CSV"
    assert s.publisher.published(TOPICS.work) == []
    assert s.scans["s1"]["status"] == "failed"


def test_a_blob_store_that_does_not_answer_is_waited_for_and_each_event_written_once():
    s = Setup(units=2, plan_errors=[BlobUnavailable("S3 down"), BlobUnavailable("S3 down")])
    s.handle(run_scan())
    assert s.planned == ["s1"] * 3
    assert types(s.publisher.published(TOPICS.scan_events)) == [c.SCAN_REQUESTED, c.SCAN_STARTED]
    assert [w["data"]["unit_id"] for w in s.publisher.published(TOPICS.work)] == ["s1.u0", "s1.u1"]
    assert s.scans["s1"]["status"] == "running"


def test_a_blob_that_is_not_there_fails_the_scan_at_once():
    s = Setup(plan_error=BlobMissing("no blob b"))
    s.handle(run_scan())
    assert s.planned == ["s1"] and s.scans["s1"]["status"] == "failed"


def test_a_redelivered_run_scan_plans_and_sends_nothing_again():
    s = Setup(units=2)
    s.handle(run_scan())
    before = len(s.publisher.published())
    s.handle(run_scan())
    assert s.planned == ["s1"]
    assert len(s.publisher.published()) == before
    assert s.scans["s1"]["status"] == "running"


def test_a_rejected_operator_command_emits_nothing_and_leaves_the_table():
    s = Setup(units=2)
    s.handle(run_scan())
    state, mark = s.scans["s1"], len(s.log)
    s.handle(operator(c.RESUME_SCAN))  # the scan is running: nothing to resume
    s.handle(operator(c.DELETE_SCAN))  # a running scan cannot be deleted
    s.handle(operator(c.ABORT_SCAN, scan_id="unknown"))
    assert s.new_entries(mark) == []
    assert s.scans["s1"] is state and "unknown" not in s.scans


def test_a_rejected_violation_status_change_emits_nothing():
    s = Setup(units=1)
    s.handle(run_scan())
    mark = len(s.log)
    change = make_event(c.CHANGE_VIOLATION_STATUS, "s1", {"scan_id": "s1", "violation_id": "v1", "severity": "high",
                                                          "status": "resolved", "changed_by": "me"},
                        id="chg-1", source="test", workspace_id="w")
    s.handle(change)  # the scan has not finished
    assert s.new_entries(mark) == []


def test_abort_then_resume_sends_only_the_unfinished_units_again():
    s = Setup(units=3)
    s.handle(run_scan())
    s.handle(unit_done("s1.u0", found=2))
    s.handle(operator(c.ABORT_SCAN))
    aborted = s.publisher.published(TOPICS.scan_events)[-1]
    assert aborted["type"] == c.SCAN_ABORTED
    assert aborted["data"]["units_completed"] == 1 and aborted["data"]["violation_count"] == 2
    assert s.scans["s1"]["status"] == "aborted"
    mark = len(s.log)
    s.handle(operator(c.RESUME_SCAN, n=2))
    new = [entry[3] for entry in s.new_entries(mark) if entry[0] == "publish"]
    assert types(new) == [c.SCAN_RESUMED, c.WORK_UNIT, c.WORK_UNIT]
    assert new[0]["data"]["unit_ids"] == ["s1.u1", "s1.u2"]
    assert [(w["data"]["unit_id"], w["data"]["attempt"]) for w in new[1:]] == [("s1.u1", 1), ("s1.u2", 1)]
    assert s.scans["s1"]["status"] == "running" and s.scans["s1"]["attempt"] == 1


def test_the_last_unit_finishes_the_scan_with_the_counts():
    s = Setup(units=2)
    s.handle(run_scan())
    s.handle(unit_done("s1.u0", found=2))
    assert types(s.publisher.published(TOPICS.scan_events))[-1] == c.SCAN_STARTED  # one unit still pending
    s.handle(unit_done("s1.u1", found=3))
    finished = s.publisher.published(TOPICS.scan_events)[-1]
    assert finished["type"] == c.SCAN_FINISHED
    assert finished["data"]["status"] == "completed"
    assert finished["data"]["violation_count"] == 5
    assert finished["data"]["violations_by_rule"] == {"r1": 5}
    assert finished["data"]["record_count"] == 100
    assert s.scans["s1"]["status"] == "completed"


def test_a_report_for_an_unknown_scan_is_ignored():
    s = Setup()
    s.handle(unit_done("x.u0", scan_id="x"))
    assert s.log == []


def test_a_silent_unit_is_offered_again_then_failed_so_its_scan_ends():
    s = Setup(units=1)
    s.handle(run_scan())  # work sent at 0: a sign of life
    s.now = AFTER_S - 1
    mark = len(s.log)
    s.reoffer_round()
    assert s.publisher.published(TOPICS.work)[1:] == [] and s.new_entries(mark) == [("flush",)]
    for offer in range(1, s.reoffers.max_offers + 1):
        s.now = offer * AFTER_S
        s.reoffer_round()
        work = s.publisher.published(TOPICS.work)
        assert len(work) == 1 + offer
        assert work[-1]["data"]["unit_id"] == "s1.u0" and work[-1]["id"] == work[0]["id"]  # the same work
    s.now = (s.reoffers.max_offers + 1) * AFTER_S
    s.reoffer_round()
    assert len(s.publisher.published(TOPICS.work)) == 1 + s.reoffers.max_offers  # not offered again
    failed = s.publisher.published(TOPICS.scan_events)[-1]
    assert failed["type"] == c.UNIT_FAILED and failed["data"]["unit_id"] == "s1.u0"
    assert failed["data"]["error"] == "no worker reported on the unit after 3 offers"
    s.handle(failed)  # it comes back to the coordinator on the scan-events topic
    finished = s.publisher.published(TOPICS.scan_events)[-1]
    assert finished["type"] == c.SCAN_FINISHED and finished["data"]["status"] == "failed"
    assert s.scans["s1"]["status"] == "failed"


def test_progress_is_a_sign_of_life_and_other_workers_scans_are_not_offered():
    s = Setup(units=1, owned_by=4)
    s.handle(run_scan())
    s.now = AFTER_S
    s.reoffer_round(owned=(0, 1))  # s1's partition (4) is another worker's
    assert len(s.publisher.published(TOPICS.work)) == 1
    s.now = AFTER_S + 30
    s.handle(progressed("s1.u0"))
    s.now = 2 * AFTER_S  # silent for 30 s only
    s.reoffer_round(owned=(4,))
    assert len(s.publisher.published(TOPICS.work)) == 1
    s.now = AFTER_S + 30 + AFTER_S
    s.reoffer_round(owned=(4,))
    assert [w["data"]["unit_id"] for w in s.publisher.published(TOPICS.work)] == ["s1.u0", "s1.u0"]


def test_a_reoffer_round_survives_a_broker_that_is_away():
    s = Setup(units=1)
    s.handle(run_scan())
    s.now = AFTER_S
    s.publisher.fail_flushes = 1
    s.reoffer_round()  # logged, offered again next round
    assert len(s.publisher.published(TOPICS.work)) == 2


def test_a_unit_queued_behind_other_work_is_neither_offered_again_nor_failed():
    """Its work partition has records left and its commit point keeps moving: a backlog, not a
    lost unit. Offering it again would only add to the backlog; failing it would lose it."""
    s = Setup(units=1)
    s.handle(run_scan())
    for round_ in range(1, 3 * (s.reoffers.max_offers + 2)):
        s.now = round_ * AFTER_S / 3
        s.work_lag = {0: (100 + round_, 5000)}  # partition 0 (s1.u0's) is being consumed
        s.reoffer_round()
    assert len(s.publisher.published(TOPICS.work)) == 1
    assert [e["type"] for e in s.publisher.published(TOPICS.scan_events)] == [c.SCAN_REQUESTED, c.SCAN_STARTED]
    s.handle(unit_done("s1.u0"))  # its turn came
    assert s.scans["s1"]["status"] == "completed"


def test_a_unit_in_a_partition_whose_commit_point_stopped_is_offered_again():
    s = Setup(units=1)
    s.handle(run_scan())
    s.work_lag = {0: (100, 5000)}
    s.now = AFTER_S / 2
    s.reoffer_round()  # the commit point is seen at 100
    s.now = AFTER_S
    s.reoffer_round()  # silent for the window, but the partition moved within it
    assert len(s.publisher.published(TOPICS.work)) == 1
    s.now = AFTER_S / 2 + AFTER_S
    s.reoffer_round()  # still at 100 a whole window later: stuck, but the unit's window started again at AFTER_S
    assert len(s.publisher.published(TOPICS.work)) == 1
    s.now = 2 * AFTER_S
    s.reoffer_round()
    assert [w["data"]["unit_id"] for w in s.publisher.published(TOPICS.work)] == ["s1.u0", "s1.u0"]


def test_a_unit_waits_while_other_partitions_move_even_if_its_own_does_not():
    """The evaluators take partitions in turns: one may wait minutes behind the others."""
    s = Setup(units=1)
    s.handle(run_scan())
    for round_ in range(1, 12):
        s.now = round_ * AFTER_S / 2
        s.work_lag = {0: (100, 5000), 3: (200 + round_, 5000)}  # s1.u0's partition 0 waits its turn
        s.reoffer_round()
    assert len(s.publisher.published(TOPICS.work)) == 1
    s.work_lag = {3: (300, 5000)}  # partition 0 drained, and s1.u0 never reported: its record was lost
    s.now += AFTER_S
    s.reoffer_round()
    assert [w["data"]["unit_id"] for w in s.publisher.published(TOPICS.work)] == ["s1.u0", "s1.u0"]


def sensitive_scan(scan_id, requested_at, execution="byoc"):
    data = {"scan_id": scan_id, "kind": "sensitive", "workspace_id": "w", "requested_by": "me",
            "requested_at": requested_at, "type": "full",
            "connectors": [{"id": "conn-a", "name": "A", "type": "local_dir", "config": {"path": "lake"}}],
            "options": {"max_workers": 2, "timeout_minutes": 1, "execution": execution}}
    return make_event(c.RUN_SCAN, scan_id, data, id=f"cmd-{scan_id}", source="test", workspace_id="w")


def test_a_byoc_scans_chunks_wait_on_the_ledger_and_fail_once_its_timeout_passed_without_a_worker():
    s = Setup()  # the coordinator's clock reads 2024-01-01T00:00:01Z
    files = [{"connector_id": "conn-a", "name": f"f{i}.csv", "size": 1, "version": "v"} for i in range(4)]
    s.coordinator.plan = lambda request: Plan(chunks(request["scan_id"], files, 2), {
        "status": "complete", "total_enumerated": 4, "workers_requested": 2,
        "connectors": [{"connector_id": "conn-a", "status": "listed", "files": 4, "error": None}]})
    s.handle(sensitive_scan("late", "2023-12-31T23:58:00.000Z"))  # deadline 23:59:00, past by more than AFTER_S
    s.handle(sensitive_scan("fresh", "2024-01-01T00:00:00.000Z"))  # deadline 00:01:00, not yet
    assert s.publisher.published(TOPICS.work) == []  # BYOC: no work for the in-cluster evaluators
    offers = [e for e in s.publisher.published(TOPICS.scan_events) if e["type"] == c.CHUNK_OFFERED]
    assert sorted(e["data"]["unit_id"] for e in offers) == ["fresh.c0", "fresh.c1", "late.c0", "late.c1"]
    s.now = 10 * AFTER_S
    s.reoffer_round()
    assert s.publisher.published(TOPICS.work) == []  # a BYOC chunk is never offered to the evaluators
    failed = [e for e in s.publisher.published(TOPICS.scan_events) if e["type"] == c.UNIT_FAILED]
    assert sorted(e["data"]["unit_id"] for e in failed) == ["late.c0", "late.c1"]
    assert "timeout passed" in failed[0]["data"]["error"]
    for event in failed:
        s.handle(event)
    assert s.scans["late"]["status"] == "failed" and s.scans["fresh"]["status"] == "running"
