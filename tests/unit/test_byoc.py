"""BYOC scans: a chunk's report events checked the way the API checks an external worker's, and
the leases on chunks (two workers never hold one chunk; an expired lease passes to the next)."""
import sqlite3

import orjson
import pytest

from byoc.worker import Misconfigured, check_reachable
from services.domain import contracts as c
from services.domain.chunk_reports import BadReport, ChunkFiles, checked, event_id
from services.domain.kinds import SENSITIVE
from services.runners.sensitive import plan_sensitive, run_chunk
from services.settings import Settings
from services.stores import byoc_store, read_models
from tests.unit.test_sensitive import Published, command, lake, request, store  # noqa: F401 (a fixture)


@pytest.fixture
def reported(lake):  # noqa: F811 (the fixture imported above)
    """A BYOC scan's first chunk, run as `scanledger scan-worker` runs it (files inline), and its events."""
    _corpus, connector, settings = lake
    req = {**request(max_workers=2, execution="byoc"), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    [offer, _] = SENSITIVE.work(command(req), req, plan.units)
    assert offer["type"] == c.CHUNK_OFFERED  # not work for the evaluators
    files = orjson.loads(store(settings).get(offer["data"]["blob"]))
    work = {**offer, "data": {**offer["data"], "files": files}}
    out = Published()
    run_chunk(work, None, out, settings)
    return offer["data"], ChunkFiles(files, offer["data"]["start_index"]), out.events


def test_the_api_gives_each_reported_event_the_id_the_evaluator_gave_it(reported):
    work, files, events = reported
    assert {e["type"] for _, e in events} == {c.UNIT_PROGRESSED, c.FILE_OUTCOME, c.FINDING_DETECTED, c.UNIT_COMPLETED}
    for i, (_topic, event) in enumerate(events):
        type_, data = checked(i, {"type": event["type"], "data": event["data"]}, work, files)
        assert (type_, data) == (event["type"], event["data"])
        assert event_id(type_, data) == event["id"]


def tampered(events, type_, **changes):
    event = next(e for _, e in events if e["type"] == type_)
    return {"type": type_, "data": {**event["data"], **changes}}


@pytest.mark.parametrize("type_, changes, path", [
    (c.FILE_OUTCOME, {"name": "not/in/the/chunk.csv"}, ("data", "name")),
    (c.FILE_OUTCOME, {"index": 999}, ("data", "index")),
    (c.FILE_OUTCOME, {"attempt": 7}, ("data", "attempt")),
    (c.FINDING_DETECTED, {"finding_id": "made-up"}, ("data", "finding_id")),
    (c.FINDING_DETECTED, {"start": 10_000}, ("data", "finding_id")),  # a second count of one finding
    (c.FINDING_DETECTED, {"scan_id": "another-scan"}, ("data", "scan_id")),
    (c.FINDING_DETECTED, {"file": "elsewhere.csv"}, ("data", "file")),
    (c.UNIT_PROGRESSED, {"unit_id": "scan-1.c1"}, ("data", "unit_id")),
    (c.UNIT_COMPLETED, {"files": {"scanned": 1, "skipped": 0, "failed": 0}}, ("data", "files")),
    (c.FILE_OUTCOME, {"status": "great"}, ("data", "status")),
])
def test_a_report_on_what_the_worker_does_not_hold_is_refused(reported, type_, changes, path):
    work, files, events = reported
    with pytest.raises(BadReport) as exc:
        checked(3, tampered(events, type_, **changes), work, files)
    assert exc.value.index == 3 and exc.value.path == path


@pytest.mark.parametrize("raw", [None, [], {"type": c.SCAN_FINISHED, "data": {}}, {"type": c.FILE_OUTCOME},
                                 {"type": c.WORK_UNIT, "data": {}}])
def test_only_a_chunks_report_types_are_taken(reported, raw):
    work, files, _ = reported
    with pytest.raises(BadReport):
        checked(0, raw, work, files)


# -- leases ----------------------------------------------------------------------------------------

@pytest.fixture
def db():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    read_models.create(conn)
    byoc_store.init(conn)
    for i in range(3):
        unit = f"s.c{i}"
        conn.execute("INSERT INTO rm_sensitive_offers VALUES (?, 's', ?, 0, ?)", (unit, i, f'{{"u": "{unit}"}}'))
        conn.execute("INSERT INTO rm_units (unit_id, scan_id, idx, record_count, rules_total, status)"
                     " VALUES (?, 's', ?, 1, 0, 'pending')", (unit, i))
    return conn


def test_each_chunk_is_leased_to_one_worker_until_its_lease_expires(db):
    a = byoc_store.claim(db, "s", "a", 30, now=100)["chunk"]
    b = byoc_store.claim(db, "s", "b", 30, now=100)["chunk"]
    c_ = byoc_store.claim(db, "s", "c", 30, now=100)["chunk"]
    assert [a["unit_id"], b["unit_id"], c_["unit_id"]] == ["s.c0", "s.c1", "s.c2"]
    assert byoc_store.claim(db, "s", "d", 30, now=110) == {"chunk": None, "open": 3}
    assert byoc_store.renew(db, "s.c0", a["lease_id"], 30, now=120)  # a's report keeps its lease
    taken = byoc_store.claim(db, "s", "d", 30, now=135)["chunk"]  # b went silent at 100: its lease passed at 130
    assert taken["unit_id"] == "s.c1" and taken["lease_id"] != b["lease_id"]
    assert byoc_store.lease(db, "s", "s.c1", b["lease_id"]) is None  # b's late report is refused (409)
    assert not byoc_store.renew(db, "s.c1", b["lease_id"], 30, now=136)
    assert byoc_store.leases(db, "s")["s.c1"]["claims"] == 2 and byoc_store.leases(db, "s")["s.c1"]["worker_id"] == "d"


def test_a_done_chunk_is_never_claimed_again_and_the_scan_runs_out_of_chunks(db):
    leases = [byoc_store.claim(db, "s", "a", 30, now=100)["chunk"] for _ in range(3)]
    for lease in leases:
        assert byoc_store.renew(db, lease["unit_id"], lease["lease_id"], 30, now=101, done=True)
    assert byoc_store.claim(db, "s", "b", 30, now=1000) == {"chunk": None, "open": 0}  # the worker exits
    assert not byoc_store.renew(db, "s.c0", leases[0]["lease_id"], 30, now=1001)  # done: no more reports


def test_a_resumed_scans_new_attempt_is_claimable_whatever_the_old_lease(db):
    old = byoc_store.claim(db, "s", "a", 30, now=100)["chunk"]
    db.execute("UPDATE rm_sensitive_offers SET attempt = 1 WHERE unit_id = 's.c0'")
    again = byoc_store.claim(db, "s", "b", 30, now=101)["chunk"]
    assert again["unit_id"] == "s.c0" and again["attempt"] == 1
    assert byoc_store.lease(db, "s", "s.c0", old["lease_id"]) is None


def test_a_released_chunk_is_claimable_at_once_and_its_holder_reports_no_more(db):
    held = byoc_store.claim(db, "s", "a", 30, now=100)["chunk"]
    assert byoc_store.release(db, held["unit_id"], held["lease_id"], now=101)
    again = byoc_store.claim(db, "s", "b", 30, now=101)["chunk"]
    assert again["unit_id"] == held["unit_id"] and byoc_store.leases(db, "s")["s.c0"]["claims"] == 2
    assert byoc_store.lease(db, "s", "s.c0", held["lease_id"]) is None
    assert not byoc_store.release(db, held["unit_id"], held["lease_id"], now=102)  # not its lease any more


def test_a_worker_that_cannot_reach_its_data_is_told_which_setting_to_fix(lake, tmp_path):  # noqa: F811
    _corpus, connector, settings = lake
    s3 = {"id": "conn-s3", "type": "s3", "config": {"bucket": "exports", "credentials": {
        "source": "env", "access_key_id_env": "SCANLEDGER_SECRET_NEVER_SET_ID",
        "secret_access_key_env": "SCANLEDGER_SECRET_NEVER_SET_KEY"}}}
    local = {**connector, "config": {"path": "lake"}}  # as the deployment config gives it: no server path
    files = [{"connector_id": local["id"], "name": "a.csv", "version": "1"},
             {"connector_id": "conn-s3", "name": "b.csv", "version": "2"}]
    work = {"workspaceid": "w", "data": {"files": files[:1], "connectors": [local, s3]}}
    check_reachable(work, settings)  # its root holds "lake"; the s3 connector has no file in this chunk
    elsewhere = Settings(data_dir=settings.data_dir, datastore_root=tmp_path / "not-the-root")
    with pytest.raises(Misconfigured) as exc:
        check_reachable(work, elsewhere)
    assert "SCANLEDGER_DATASTORE_ROOT" in str(exc.value) and str(tmp_path / "not-the-root") in str(exc.value)
    assert "\n" not in str(exc.value)
    with pytest.raises(Misconfigured, match="set SCANLEDGER_SECRET_NEVER_SET_ID and SCANLEDGER_SECRET_NEVER_SET_KEY"):
        check_reachable({**work, "data": {**work["data"], "files": files}}, settings)
    unchanged = [files[0], {**files[1], "unchanged": True}]  # an unchanged file is not read: nothing to reach
    check_reachable({**work, "data": {**work["data"], "files": unchanged}}, settings)


def test_a_worker_token_is_stored_hashed_and_knows_its_scans_status(db):
    token = byoc_store.new_worker_token()
    byoc_store.add_worker_token(db, token, "w", "s", "t")
    assert token not in str([tuple(r) for r in db.execute("SELECT * FROM worker_tokens")])
    assert byoc_store.worker_token(db, token)["scan_id"] == "s"
    assert byoc_store.worker_token(db, token + "x") is None


def test_the_image_a_deployment_config_names_builds_from_this_repository():
    from pathlib import Path

    from services.settings import Settings

    root = Path(__file__).resolve().parents[2]
    dockerfile, compose = (root / "Dockerfile").read_text(), (root / "compose.byoc.yaml").read_text()
    assert 'ENTRYPOINT ["scanledger"]' in dockerfile and 'CMD ["scan-worker"]' in dockerfile
    assert f"image: {Settings().worker_image}" in compose and "scan-worker:" in compose
