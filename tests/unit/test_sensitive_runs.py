"""A sensitive-data scan as a run of seed 003, on the pure code and the read models (no broker):
its scan id and rerun, its resume (unfinished chunks only, the coverage rule, the deadline), and
what the Activity list shows of it: a finished scan waits for its findings, its counts are its
files' and findings', its chunks are its containers, its configuration shows no server path."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from starlette.requests import Request

from api.operations import queries as oq
from api.operations import views
from api.scans.snapshots import rerun_request
from api.web.auth import Principal
from api.web.requests import stable_id
from services.adapters.db import transaction
from services.domain import contracts as c
from services.domain import lifecycle
from services.domain.envelope import deterministic_id, follow, iso, make_event
from services.domain.kinds import SENSITIVE
from services.domain.kinds.sensitive import chunks
from services.readmodels.apply import apply_batch
from services.readmodels.record import Record
from services.stores import read_models

WS = "w1"
COMMANDS, EVENTS, FINDINGS = "t.commands", "t.scan-events", "t.findings"
CONNECTOR = {"id": "conn-a", "name": "Lake", "type": "local_dir",
             "config": {"path": "lake", "resolved_path": "/srv/datastores/lake"}}
FILES = [{"connector_id": "conn-a", "name": f"f{i}.txt", "size": 10, "version": "v1"} for i in range(4)]


def at(minutes: float) -> str:
    return iso(datetime(2024, 3, 1, 10, tzinfo=UTC) + timedelta(minutes=minutes))


def request(**options) -> dict:
    return {"scan_id": "scan-1", "operation_id": 7, "kind": "sensitive", "workspace_id": WS, "requested_by": "me",
            "requested_at": at(0), "type": "full", "connectors": [CONNECTOR],
            "options": {"max_workers": 2, "prefixes": [], "coverage_target": 1.0, "coverage_strategy": "best_effort",
                        "timeout_minutes": 120, **options}}


class Scan:
    """A sensitive-data scan driven through the lifecycle, its chunks' reports made as a chunk makes them."""

    def __init__(self, enumeration_status: str = "complete"):
        self.records: list[Record] = []
        self.req = request()
        self.plans = chunks("scan-1", FILES, 2)
        for plan in self.plans:
            plan["blob"] = f"blob-{plan.pop('files')[0]['name']}"  # as plan_sensitive stores them
        command = self.command(c.RUN_SCAN, self.req)
        self.state, events = lifecycle.request(None, command)
        self.emit(events)
        self.state, events, _ = lifecycle.start(self.state, command, self.plans, at(1), {
            "status": enumeration_status, "total_enumerated": len(FILES), "workers_requested": 2,
            "connectors": [{"connector_id": "conn-a", "status": "listed", "files": len(FILES), "error": None}]})
        self.emit(events)

    def command(self, type_: str, data: dict) -> dict:
        event = make_event(type_, "scan-1", data, id=f"cmd-{len(self.records)}", source="api", workspace_id=WS)
        self.write(COMMANDS, event)
        return event

    def write(self, topic: str, event: dict) -> None:
        self.records.append(Record(topic, 0, len(self.records), event["type"], event))

    def emit(self, events: list[dict]) -> None:
        for event in events:
            self.write(EVENTS, event)

    def chunk(self, index: int, attempt: int = 0, files: int | None = None) -> None:
        """Chunk `index` reports its files (one finding each) and, unless stopped after `files`, its result."""
        plan = self.plans[index]
        mine = FILES[plan["start_index"]:plan["end_index"] + 1]
        work = {"subject": "scan-1", "workspaceid": WS, "id": f"work-{plan['unit_id']}-{attempt}"}
        for i, file in enumerate(mine[:files]):
            self.write(FINDINGS, follow(work, c.FINDING_DETECTED, c.FindingDetected(
                finding_id=f"find-{file['name']}", scan_id="scan-1", unit_id=plan["unit_id"], connector_id="conn-a",
                file=file["name"], line=1, start=0, end=5, detector="email", family="email", confidence=0.9,
                masked="j***@example.com").model_dump(), id=f"find-{file['name']}-{attempt}", source="t"))
            self.emit([follow(work, c.FILE_OUTCOME, c.FileOutcome(
                scan_id="scan-1", unit_id=plan["unit_id"], attempt=attempt, connector_id="conn-a", name=file["name"],
                index=plan["start_index"] + i, status="scanned", size=10, version="v1", findings=1).model_dump(),
                id=deterministic_id(c.FILE_OUTCOME, file["name"], attempt), source="t")])
        if files is not None:
            return
        done = follow(work, c.UNIT_COMPLETED, c.UnitCompleted(
            scan_id="scan-1", unit_id=plan["unit_id"], attempt=attempt, record_count=len(mine), rules_done=len(mine),
            violations_by_rule={"email": len(mine)}, violations_by_severity={},
            files={"scanned": len(mine), "skipped": 0, "failed": 0, "unchanged": 0}).model_dump(),
            id=deterministic_id(c.UNIT_COMPLETED, plan["unit_id"], attempt), source="t")
        self.emit([done])
        self.state, events = lifecycle.unit_done(self.state, done, at(2))
        self.emit(events)

    def operator(self, type_: str, when: str) -> list[dict]:
        command = self.command(type_, {"scan_id": "scan-1", "requested_by": "ops"})
        if type_ == c.RESUME_SCAN:
            self.state, events, work = lifecycle.resume(self.state, command, when)
        else:
            (self.state, events), work = lifecycle.abort(self.state, command, when), []
        self.emit(events)
        return work


@pytest.fixture()
def db():
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    read_models.create(conn)
    yield conn
    conn.close()


def project(db, records: list[Record]) -> None:
    with transaction(db):
        apply_batch(db, records)


def listed(db) -> dict:
    (row,), total = oq.operations_page(db, WS, oq.OperationsQuery.model_validate({"operation_type": "scan"}))
    assert total == 1
    return views.item_view(row)


def test_a_finished_scan_shows_running_until_its_findings_are_in_then_its_files_and_findings(db):
    scan = Scan()
    scan.chunk(0)
    scan.chunk(1)
    assert scan.state["status"] == "completed"
    project(db, [r for r in scan.records if r.topic != FINDINGS])
    assert listed(db)["result"] == "running"  # finished on the ledger, its findings still on their way
    project(db, [r for r in scan.records if r.topic == FINDINGS])  # after scan.finished: they finalize it
    item = listed(db)
    assert item["id"] == 7 and item["type"] == "scan" and item["result"] == "success" and item["datastore"] is None
    assert item["status"] == {"total_containers": 2, "containers_analyzed": 2, "partitions_scanned": 2,
                              "records_processed": 4, "anomalies_identified": 4}
    assert oq.operations_page(db, WS, oq.OperationsQuery.model_validate({"operation_type": "catalog"}))[1] == 0
    containers = [views.container_view(u, "completed") for u in oq.units(db, "scan-1")]
    assert [(x["container"], x["records_processed"], x["anomaly_count"], x["result"]) for x in containers] == [
        ({"id": None, "name": f"chunk {i}", "container_type": "chunk"}, 2, 2, "success") for i in (0, 1)]


def test_an_aborted_scan_resumes_its_unfinished_chunk_to_the_uninterrupted_result(db):
    scan = Scan()
    scan.chunk(0)
    scan.chunk(1, files=1)  # one file of chunk 1 reported, then the cancel
    scan.operator(c.ABORT_SCAN, at(3))
    project(db, scan.records)
    item = listed(db)
    assert item["result"] == "aborted"
    assert (item["status"]["records_processed"], item["status"]["anomalies_identified"]) == (3, 3)  # what was found
    containers = [views.container_view(u, "aborted") for u in oq.units(db, "scan-1")]
    assert [(x["result"], x["records_processed"], x["anomaly_count"]) for x in containers] == [
        ("success", 2, 2), ("aborted", 1, 1)]

    before = len(scan.records)
    work = scan.operator(c.RESUME_SCAN, at(4))
    assert [u["unit_id"] for u in work] == ["scan-1.c1"]  # the completed chunk is not read again
    scan.chunk(1, attempt=1)  # the whole chunk again: its first file's outcome and finding are the same ones
    assert scan.state["status"] == "completed" and scan.state["finished"]["violation_count"] == 4
    project(db, scan.records[before:])
    item = listed(db)
    assert item["result"] == "success" and item["start_time"] == at(4)
    assert (item["status"]["records_processed"], item["status"]["anomalies_identified"]) == (4, 4)


def test_a_resume_with_every_chunk_done_ends_by_the_coverage_rule_not_completed():
    scan = Scan(enumeration_status="partial")  # a connector could not be listed: never complete
    scan.chunk(0)
    scan.chunk(1)
    assert scan.state["status"] == "partial_failure"
    assert scan.operator(c.RESUME_SCAN, at(3)) == [] and scan.state["status"] == "partial_failure"


def test_a_resume_past_the_scans_timeout_is_refused():
    scan = Scan()
    scan.chunk(0)
    scan.operator(c.ABORT_SCAN, at(3))
    late = at(121)  # requested at 0, timeout_minutes 120: its chunks would stop reading at once
    assert "rerun it" in SENSITIVE.resume_refused(scan.req, late)
    assert SENSITIVE.resume_refused(scan.req, at(119)) is None
    with pytest.raises(lifecycle.Rejected, match="timeout"):
        scan.operator(c.RESUME_SCAN, late)


def test_a_rerun_is_a_new_sensitive_scan_of_the_same_snapshot():
    recorded = orjson.dumps({**request(), "baseline_scans": {}}).decode()
    rerun = rerun_request(Principal("t", WS, "Member", "dana"), recorded, "scan-1")
    assert rerun["scan_id"].startswith("scan-") and rerun["scan_id"] != "scan-1"
    assert rerun["rerun_of"] == "scan-1" and rerun["requested_by"] == "dana" and "operation_id" not in rerun
    assert rerun["connectors"] == [CONNECTOR] and rerun["options"] == request()["options"]
    assert c.RunScan.model_validate(rerun).root.rerun_of == "scan-1"  # a command the consumers accept


def test_a_retry_under_an_idempotency_key_keeps_the_kinds_prefix():
    keyed = Request({"type": "http", "state": {"idempotency_seed": "token:route:key"}})
    assert stable_id(keyed, "scan-fresh", "scan-") == stable_id(keyed, "scan-other", "scan-")
    assert stable_id(keyed, "scan-fresh", "scan-").startswith("scan-")
    assert stable_id(Request({"type": "http", "state": {}}), "scan-fresh", "scan-") == "scan-fresh"


def test_the_configuration_shows_the_connectors_as_registered_never_a_server_path():
    s3 = {"id": "conn-b", "name": "Exports", "type": "s3", "config": {
        "bucket": "b", "credentials": {"source": "env", "access_key_id_env": "SCANLEDGER_SECRET_KEY_ID"}}}
    config = views.sensitive_configuration({**request(), "connectors": [CONNECTOR, s3]})
    assert config["connectors"] == [{"id": "conn-a", "name": "Lake", "type": "local_dir", "config": {"path": "lake"}},
                                    s3]
    assert config["type"] == "full" and config["options"]["max_workers"] == 2 and config["baseline_scans"] == {}
    assert "/srv" not in orjson.dumps(config).decode()
