"""Sensitive-data scans (seed 004): chunking, the coverage block, the final status, a scan's
lifecycle, and planning and running chunks over a local directory with the labelled corpus."""
from collections import Counter

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.corpus import generate
from services.adapters.blobstore import LocalBlobStore
from services.domain import contracts as c
from services.domain import lifecycle
from services.domain.detectors import Finding
from services.domain.envelope import make_event, utcnow
from services.domain.kinds import SENSITIVE, kind_of
from services.domain.kinds.sensitive import baseline_versions, chunks, coverage, deadline, final_status
from services.domain.llm_review import Verdict, adjusted_confidence
from services.runners import sensitive as sensitive_runner
from services.runners.sensitive import groups, plan_sensitive, run_chunk
from services.settings import Settings


def files(n, connector="conn-a"):
    return [{"connector_id": connector, "name": f"f{i}.csv", "size": 1, "version": "v"} for i in range(n)]


def test_chunks_are_contiguous_one_per_worker_slot():
    plans = chunks("s", files(10), 4)
    assert [(p["start_index"], p["end_index"], len(p["files"])) for p in plans] == [
        (0, 2, 3), (3, 5, 3), (6, 7, 2), (8, 9, 2)]
    assert [p["unit_id"] for p in plans] == ["s.c0", "s.c1", "s.c2", "s.c3"]
    assert len(chunks("s", files(3), 10)) == 3  # min(max_workers, files)
    assert chunks("s", [], 10) == []


def test_coverage_block_as_the_seed_shows_it():
    block = coverage(target=0.8, strategy="best_effort", enumeration_status="in_progress", enumerated=52000,
                     scanned=28600, skipped=9345, failed=15)
    assert block == {"coverage_target": 0.8, "coverage_strategy": "best_effort", "coverage_pct": 0.55,
                     "target_met": False, "completeness_score": 0.5498, "enumeration_status": "in_progress",
                     "total_enumerated": 52000, "total_scanned": 28600, "total_skipped": 9345, "total_failed": 15}
    done = coverage(target=1.0, strategy="strict", enumeration_status="complete", enumerated=4, scanned=4,
                    skipped=0, failed=0)
    assert done["coverage_pct"] == done["completeness_score"] == 1.0 and done["target_met"]
    partial = coverage(target=0.5, strategy="best_effort", enumeration_status="partial", enumerated=4, scanned=4,
                       skipped=0, failed=0)
    assert partial["completeness_score"] == 0.5
    assert coverage(target=1.0, strategy="best_effort", enumeration_status="failed", enumerated=0, scanned=0,
                    skipped=0, failed=0)["completeness_score"] == 0.0
    assert coverage(target=1.0, strategy="best_effort", enumeration_status="complete", enumerated=0, scanned=0,
                    skipped=0, failed=0)["target_met"]


@pytest.mark.parametrize("enumeration, met, strategy, failed, completed, read, files_failed, expected", [
    ("complete", True, "best_effort", 0, 2, 4, 0, "completed"),
    ("complete", False, "best_effort", 0, 2, 3, 0, "partial_failure"),
    ("complete", False, "strict", 0, 2, 3, 0, "failed"),
    ("partial", True, "best_effort", 0, 2, 4, 0, "partial_failure"),
    ("partial", True, "strict", 0, 2, 4, 0, "partial_failure"),
    ("complete", True, "best_effort", 1, 1, 2, 0, "partial_failure"),
    ("complete", True, "best_effort", 2, 0, 0, 0, "failed"),
    ("failed", True, "best_effort", 0, 0, 0, 0, "failed"),
    # every file that was to be read failed: no verdict on data nobody read (issue 18)
    ("complete", False, "best_effort", 0, 2, 0, 4, "failed"),
    ("partial", False, "best_effort", 0, 2, 0, 1, "failed"),
    # one file read beside the failures: partial; nothing read and nothing failed (all skipped): partial
    ("complete", False, "best_effort", 0, 2, 1, 3, "partial_failure"),
    ("complete", False, "best_effort", 0, 2, 0, 0, "partial_failure"),
])
def test_final_status(enumeration, met, strategy, failed, completed, read, files_failed, expected):
    assert final_status(enumeration_status=enumeration, target_met=met, strategy=strategy, units_failed=failed,
                        units_completed=completed, files_read=read, files_failed=files_failed) == expected


CONNECTOR = {"id": "conn-a", "name": "A", "type": "local_dir", "config": {"path": "lake"}}


def request(**options):
    return {"scan_id": "scan-1", "kind": "sensitive", "workspace_id": "w", "requested_by": "me",
            "requested_at": utcnow(), "type": "full", "connectors": [CONNECTOR],
            "options": {"max_workers": 2, "prefixes": [], "coverage_target": 1.0,
                        "coverage_strategy": "best_effort", **options}}


def command(req):
    return make_event(c.RUN_SCAN, req["scan_id"], req, id="cmd", source="t", workspace_id="w")


def chunk_done(unit_id, scanned, skipped=0, failed=0, type_=c.UNIT_COMPLETED):
    data = {"scan_id": "scan-1", "unit_id": unit_id, "violations_by_rule": {"email": 2},
            "violations_by_severity": {}, "files": {"scanned": scanned, "skipped": skipped, "failed": failed}}
    data.update(record_count=scanned, rules_done=scanned + skipped + failed) if type_ == c.UNIT_COMPLETED \
        else data.update(error="boom")
    return make_event(type_, "scan-1", data, id=f"ev-{unit_id}", source="t", workspace_id="w")


def enumeration(status="complete", total=4):
    return {"status": status, "total_enumerated": total, "workers_requested": 2,
            "connectors": [{"connector_id": "conn-a", "status": "listed", "files": total, "error": None}]}


def test_the_request_validates_and_names_its_kind():
    req = request()
    assert kind_of(req) is SENSITIVE
    assert c.RunScan.model_validate(req).root.kind == "sensitive"
    with pytest.raises(ValueError):
        c.RunScan.model_validate({**req, "options": {**req["options"], "bogus": 1}})


def test_a_scan_enumerates_then_runs_its_chunks_and_completes_when_covered():
    req = request()
    state, _ = lifecycle.request(None, command(req))
    plans = chunks("scan-1", files(4), 2)
    state, events, work_units = lifecycle.start(state, command(req), plans, "t1", enumeration())
    assert [e["type"] for e in events] == [c.SCAN_ENUMERATED, c.SCAN_STARTED]
    assert events[0]["data"]["status"] == "complete" and events[0]["data"]["total_enumerated"] == 4
    work = SENSITIVE.work(command(req), req, work_units)
    assert [(w["data"]["start_index"], w["data"]["record_count"]) for w in work] == [(0, 2), (2, 2)]
    assert work[0]["data"]["connectors"] == [CONNECTOR]
    state, _ = lifecycle.unit_done(state, chunk_done("scan-1.c0", 2), "t2")
    state, again = lifecycle.unit_done(state, chunk_done("scan-1.c0", 2), "t2")
    assert again == []  # a chunk reported twice counts once
    state, events = lifecycle.unit_done(state, chunk_done("scan-1.c1", 2), "t3")
    assert state["status"] == "completed"
    assert events[0]["data"]["record_count"] == 4 and events[0]["data"]["violation_count"] == 4


def test_a_scan_short_of_its_target_is_partial_or_failed_when_strict():
    for strategy, expected in (("best_effort", "partial_failure"), ("strict", "failed")):
        req = request(coverage_strategy=strategy)
        state, _ = lifecycle.request(None, command(req))
        state, _, _ = lifecycle.start(state, command(req), chunks("scan-1", files(4), 2), "t1", enumeration())
        state, _ = lifecycle.unit_done(state, chunk_done("scan-1.c0", 2), "t2")
        state, _ = lifecycle.unit_done(state, chunk_done("scan-1.c1", 1, failed=1), "t3")
        assert state["status"] == expected


def test_a_scan_whose_every_file_failed_is_failed_not_partial():
    for outcomes, expected in ((((0, 0, 2), (0, 0, 2)), "failed"), (((0, 0, 2), (0, 1, 1)), "failed"),
                               (((1, 0, 1), (0, 0, 2)), "partial_failure")):
        req = request()
        state, _ = lifecycle.request(None, command(req))
        state, _, _ = lifecycle.start(state, command(req), chunks("scan-1", files(4), 2), "t1", enumeration())
        for unit, (scanned, skipped, failed) in zip(("scan-1.c0", "scan-1.c1"), outcomes, strict=True):
            state, _ = lifecycle.unit_done(state, chunk_done(unit, scanned, skipped, failed), "t2")
        assert state["status"] == expected, outcomes


def test_no_connector_listed_fails_the_scan_with_the_enumeration_recorded():
    req = request()
    state, _ = lifecycle.request(None, command(req))
    failed = {"status": "failed", "total_enumerated": 0, "workers_requested": 0,
              "connectors": [{"connector_id": "conn-a", "status": "failed", "files": 0, "error": "gone"}]}
    state, events, work = lifecycle.start(state, command(req), [], "t1", failed)
    assert [e["type"] for e in events] == [c.SCAN_ENUMERATED, c.SCAN_FINISHED]
    assert state["status"] == "failed" and work == [] and "gone" in events[1]["data"]["error"]


def test_cancel_keeps_what_was_found():
    req = request()
    state, _ = lifecycle.request(None, command(req))
    state, _, _ = lifecycle.start(state, command(req), chunks("scan-1", files(4), 2), "t1", enumeration())
    state, _ = lifecycle.unit_done(state, chunk_done("scan-1.c0", 2), "t2")
    abort = make_event(c.ABORT_SCAN, "scan-1", {"scan_id": "scan-1", "requested_by": "me"}, id="a", source="t",
                       workspace_id="w")
    state, events = lifecycle.abort(state, abort, "t3")
    assert state["status"] == "aborted" and events[0]["data"]["violation_count"] == 2


# -- the I/O half over a local directory -----------------------------------------------------------

class Published:
    def __init__(self):
        self.events = []

    def publish(self, topic, event, key=None):
        self.events.append((topic, event))

    def flush(self, *a):
        pass

    def of(self, type_):
        return [e for _, e in self.events if e["type"] == type_]


@pytest.fixture
def lake(tmp_path):
    corpus = generate(seed=3, files=10, rows=40)
    root = tmp_path / "root"
    for f in corpus.files:
        (root / "lake" / f.name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lake" / f.name).write_bytes(f.data)
    (root / "lake" / "data" / "image.bin").write_bytes(b"\x00\x01binary")
    settings = Settings(data_dir=tmp_path / "data", datastore_root=root)
    return corpus, {**CONNECTOR, "config": {"path": "lake", "resolved_path": str(root / "lake")}}, settings


def test_plan_and_run_chunks_find_what_was_planted_once(lake):
    corpus, connector, settings = lake
    missing = {"id": "conn-gone", "name": "G", "type": "local_dir", "config": {"path": "/nowhere"}}
    req = {**request(max_workers=3, file_types=["csv", "json", "jsonl", "parquet", "txt", "gz"]),
           "connectors": [connector, missing]}
    plan = plan_sensitive(req, store(settings), settings)
    assert plan.enumeration["status"] == "partial"
    assert plan.enumeration["total_enumerated"] == len(corpus.files) == 10
    assert len(plan.units) == 3
    cmd = command(req)
    out = Published()
    for work in SENSITIVE.work(cmd, req, plan.units):
        run_chunk(work, store(settings), out, settings)
        run_chunk(work, store(settings), out, settings)  # a retried chunk: the same events, the same ids
    outcomes = {e["id"]: e["data"] for e in out.of(c.FILE_OUTCOME)}
    assert len(outcomes) == 10 and {d["status"] for d in outcomes.values()} == {"scanned"}
    findings = {e["id"]: e["data"] for e in out.of(c.FINDING_DETECTED)}
    by_name = {}
    for d in findings.values():
        by_name.setdefault(d["file"], []).append(d)
    truth = Counter(family for _, _, family in corpus.truth)
    assert Counter(d["family"] for d in findings.values()) == truth
    assert all("masked" in d and d["masked"] for d in findings.values())
    results = {e["data"]["unit_id"]: e["data"] for e in out.of(c.UNIT_COMPLETED)}
    assert sum(r["files"]["scanned"] for r in results.values()) == 10
    assert sum(sum(r["violations_by_rule"].values()) for r in results.values()) == len(findings)


def test_files_outside_the_filter_are_not_enumerated_and_a_binary_is_skipped(lake):
    _, connector, settings = lake
    req = {**request(max_workers=1, max_files=5), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    assert plan.enumeration["total_enumerated"] == 5
    req = {**request(max_workers=1, file_types=["bin"]), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    blobs = store(settings)
    assert [f["name"] for u in plan.units for f in orjson.loads(blobs.get(u["blob"]))] == ["data/image.bin"]
    out = Published()
    run_chunk(SENSITIVE.work(command(req), req, plan.units)[0], store(settings), out, settings)
    [outcome] = out.of(c.FILE_OUTCOME)
    assert outcome["data"]["status"] == "skipped" and outcome["data"]["reason"]


def test_a_cancel_stops_between_files_without_a_result(lake, monkeypatch):
    _, connector, settings = lake
    monkeypatch.setattr(sensitive_runner, "GROUP_FILES", 1)  # checked between groups of files: here, of one
    req = {**request(max_workers=1), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    out = Published()
    calls = iter([False, False, True])
    run_chunk(SENSITIVE.work(command(req), req, plan.units)[0], store(settings), out, settings, lambda: next(calls))
    assert len(out.of(c.FILE_OUTCOME)) == 2 and out.of(c.UNIT_COMPLETED) == []


def test_a_chunk_past_the_scans_timeout_skips_the_files_left(lake):
    _, connector, settings = lake
    req = {**request(max_workers=1, timeout_minutes=5), "connectors": [connector],
           "requested_at": "2024-01-01T00:00:00.000Z"}
    assert deadline(req) == "2024-01-01T00:05:00.000Z"
    plan = plan_sensitive(req, store(settings), settings)
    out = Published()
    run_chunk(SENSITIVE.work(command(req), req, plan.units)[0], store(settings), out, settings)
    assert {(e["data"]["status"], e["data"]["reason"]) for e in out.of(c.FILE_OUTCOME)} == {("skipped", "timeout")}
    [result] = out.of(c.UNIT_COMPLETED)
    assert result["data"]["files"]["skipped"] == 11 and result["data"]["files"]["scanned"] == 0


def test_an_incremental_scan_skips_the_files_its_baseline_covered(lake):
    _, connector, settings = lake
    full = {**request(max_workers=2), "connectors": [connector]}
    blobs = store(settings)
    files_ = [f for u in plan_sensitive(full, blobs, settings).units for f in orjson.loads(blobs.get(u["blob"]))]
    base = {f["name"]: f["version"] for f in files_[:4]}
    base[files_[4]["name"]] = "an older version"
    inc = {**full, "type": "incremental", "baseline_blob": blobs.put(orjson.dumps({"conn-a": base})),
           "baseline_scans": {"conn-a": "scan-0"}}
    marked = baseline_versions(inc, files_, {"conn-a": base})
    assert [f.get("unchanged", False) for f in marked][:6] == [True] * 4 + [False] * 2
    assert baseline_versions(full, files_, {"conn-a": base}) == files_  # a full scan reads all
    plan = plan_sensitive(inc, store(settings), settings)
    out = Published()
    for work in SENSITIVE.work(command(inc), inc, plan.units):
        run_chunk(work, store(settings), out, settings)
    outcomes = Counter((e["data"]["status"], e["data"]["reason"]) for e in out.of(c.FILE_OUTCOME))
    assert outcomes[("skipped", "unchanged")] == 4
    results = [e["data"]["files"] for e in out.of(c.UNIT_COMPLETED)]
    assert sum(r["unchanged"] for r in results) == 4
    block = coverage(target=1.0, strategy="strict", enumeration_status="complete", enumerated=11, scanned=7,
                     skipped=4, failed=0, unchanged=4)
    assert block["coverage_pct"] == 1.0 and block["target_met"] and block["total_skipped"] == 4


def store(settings):
    return LocalBlobStore(settings.blob_dir)


def test_a_large_enumeration_keeps_every_event_and_work_unit_small(tmp_path):
    """The chunks' file lists go to the blob store: a scan of many files fits the broker's message limit."""
    root = tmp_path / "root"
    folder = root / "many" / "some" / "longer" / "path"
    folder.mkdir(parents=True)
    for i in range(12_000):
        (folder / f"name_{i:06d}.csv").write_bytes(b"")
    settings = Settings(data_dir=tmp_path / "data", datastore_root=root)
    connector = {**CONNECTOR, "config": {"path": "many", "resolved_path": str(root / "many")}}
    req = {**request(max_workers=10), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    assert plan.enumeration["total_enumerated"] == 12_000 and len(plan.units) == 10
    state, _ = lifecycle.request(None, command(req))
    _, events, units = lifecycle.start(state, command(req), plan.units, "t1", plan.enumeration)
    work = SENSITIVE.work(command(req), req, units)
    assert max(len(orjson.dumps(m)) for m in [*events, *work]) < 20_000


def test_a_sqlite_connectors_tables_are_scanned_as_csv(tmp_path):
    import sqlite3
    root = tmp_path / "root"
    root.mkdir()
    with sqlite3.connect(root / "shop.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER, email TEXT)")
        db.executemany("INSERT INTO customers VALUES (?, ?)", [(1, "ann.lee@example.com"), (2, "none")])
    settings = Settings(data_dir=tmp_path / "data", datastore_root=root)
    shop = {"id": "conn-s", "name": "Shop", "type": "sqlite",
            "config": {"path": "shop.db", "resolved_path": str(root / "shop.db")}}
    req = {**request(max_workers=1), "connectors": [shop]}
    plan = plan_sensitive(req, store(settings), settings)
    assert plan.enumeration["total_enumerated"] == 1
    out = Published()
    run_chunk(SENSITIVE.work(command(req), req, plan.units)[0], store(settings), out, settings)
    [outcome] = out.of(c.FILE_OUTCOME)
    assert (outcome["data"]["name"], outcome["data"]["status"], outcome["data"]["findings"]) == ("customers",
                                                                                                  "scanned", 1)
    [finding] = out.of(c.FINDING_DETECTED)
    assert (finding["data"]["row"], finding["data"]["column"], finding["data"]["family"]) == (1, "email", "email")


def test_an_unexpected_read_error_fails_that_file_only(lake, monkeypatch):
    _, connector, settings = lake
    from services.adapters.connectors import LocalDirConnector
    real = LocalDirConnector.read_bytes
    broken = "data/file_0000.csv"

    def read_bytes(self, name, max_bytes=None):
        if name == broken:
            raise RuntimeError("boom")
        return real(self, name, max_bytes)

    monkeypatch.setattr(LocalDirConnector, "read_bytes", read_bytes)
    req = {**request(max_workers=1, file_types=["csv", "txt"]), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    out = Published()
    run_chunk(SENSITIVE.work(command(req), req, plan.units)[0], store(settings), out, settings)
    outcomes = {e["data"]["name"]: (e["data"]["status"], e["data"]["reason"]) for e in out.of(c.FILE_OUTCOME)}
    assert outcomes.pop(broken) == ("failed", "unreadable: RuntimeError")
    assert outcomes and {s for s, _ in outcomes.values()} == {"scanned"}
    [result] = out.of(c.UNIT_COMPLETED)
    assert result["data"]["files"]["failed"] == 1


def test_files_are_scanned_in_groups_by_count_and_size():
    sized = [{"name": str(i), "size": size} for i, size in enumerate([1, 1, 5, 1, 1, 1, 1])]
    assert [(first, [f["name"] for f in g]) for first, g in groups(sized, max_files=3, max_bytes=6)] == [
        (0, ["0", "1", "2"]), (3, ["3", "4", "5"]), (6, ["6"])]
    assert [len(g) for _, g in groups(sized, max_files=10, max_bytes=7)] == [3, 4]
    assert list(groups([])) == []


def test_findings_are_capped_per_file_and_detector_and_every_occurrence_is_counted(tmp_path):
    root = tmp_path / "root"
    (root / "many").mkdir(parents=True)
    rows = [f"{i},person{i}@example.com,{'4111111111111111' if i < 3 else ''}" for i in range(30)]
    (root / "many" / "contacts.csv").write_text("id,email,card\n" + "\n".join(rows) + "\n")
    (root / "many" / "few.txt").write_text("one a@example.com and b@example.com\n")
    settings = Settings(data_dir=tmp_path / "data", datastore_root=root)
    connector = {**CONNECTOR, "config": {"path": "many", "resolved_path": str(root / "many")}}
    for cap, kept in ((10, {"contacts.csv": 13, "few.txt": 2}), (None, {"contacts.csv": 33, "few.txt": 2})):
        req = {**request(max_workers=1, max_findings_per_file=cap), "connectors": [connector]}
        plan = plan_sensitive(req, store(settings), settings)
        [work] = SENSITIVE.work(command(req), req, plan.units)
        assert work["data"].get("max_findings_per_file") == cap
        out = Published()
        run_chunk(work, store(settings), out, settings)
        found = [e["data"] for _, e in out.events if e["type"] == c.FINDING_DETECTED]
        outcomes = {e["data"]["name"]: e["data"] for _, e in out.events if e["type"] == c.FILE_OUTCOME}
        assert {n: o["findings"] for n, o in outcomes.items()} == kept
        assert {n: o["occurrences"] for n, o in outcomes.items()} == {"contacts.csv": 33, "few.txt": 2}
        per_file = Counter((f["file"], f["detector"]) for f in found)
        assert per_file[("contacts.csv", "email")] == (cap or 30) and per_file[("contacts.csv", "card_number")] == 3
        emails = sorted(f["row"] for f in found if f["file"] == "contacts.csv" and f["detector"] == "email")
        assert emails == list(range(1, (cap or 30) + 1))  # the first ones, in the file's order
        [result] = [e["data"] for _, e in out.events if e["type"] == c.UNIT_COMPLETED]
        assert sum(result["violations_by_rule"].values()) == len(found)  # the scan counts what it reports


# -- the report events' data, built without the models (services/runners/sensitive.py) -------------------

_text = st.text(max_size=12)
_cause = {"subject": "scan-1", "workspaceid": "w", "id": "m", "data": {"scan_id": "scan-1", "unit_id": "scan-1.c0"}}


@given(f=st.builds(Finding, detector=_text, family=_text, confidence=st.one_of(st.floats(0, 1), st.integers(0, 1)),
                   masked=_text, row=st.none() | st.integers(1, 10**9), column=st.none() | _text,
                   line=st.none() | st.integers(1, 10**9), start=st.integers(0, 10**6), end=st.integers(0, 10**6)),
       verdict=st.none() | st.builds(Verdict, st.sampled_from(["confirmed", "rejected", "not_reviewed"]),
                                     st.none() | st.floats(0, 1) | st.integers(0, 1)),
       model=st.none() | _text)
def test_a_findings_data_is_the_models_dump(f, verdict, model):
    file = {"connector_id": "conn-a", "name": "a/b.csv", "version": "v"}
    event = sensitive_runner._finding(_cause, "fid", file, f, verdict, model, utcnow())
    llm = {} if verdict is None else {
        "llm_verdict": verdict.verdict, "llm_confidence": verdict.llm_confidence, "detector_confidence": f.confidence,
        "llm_model": model if verdict.llm_confidence is not None else None}
    dumped = c.FindingDetected(
        finding_id="fid", scan_id="scan-1", unit_id="scan-1.c0", connector_id="conn-a", file="a/b.csv", row=f.row,
        column=f.column, line=f.line, start=f.start, end=f.end, detector=f.detector, family=f.family,
        confidence=adjusted_confidence(f.confidence, verdict) if verdict else f.confidence, masked=f.masked, **llm,
    ).model_dump()
    assert list(event["data"].items()) == list(dumped.items())
    assert orjson.dumps(event["data"]) == orjson.dumps(dumped)


@given(status=st.sampled_from(["scanned", "skipped", "failed"]), reason=st.none() | _text,
       numbers=st.tuples(*[st.integers(0, 10**9)] * 4), attempt=st.integers(0, 5))
def test_a_file_outcomes_data_is_the_models_dump(status, reason, numbers, attempt):
    index, size, findings, occurrences = numbers
    work = {"scan_id": "scan-1", "unit_id": "scan-1.c0", "attempt": attempt}
    file = {"connector_id": "conn-a", "name": "a/b.csv", "version": "v"}
    data = sensitive_runner.outcome_data(work, file, index, status, reason, size, findings, occurrences)
    dumped = c.FileOutcome(scan_id="scan-1", unit_id="scan-1.c0", attempt=attempt, connector_id="conn-a",
                           name="a/b.csv", index=index, status=status, reason=reason, size=size, version="v",
                           findings=findings, occurrences=occurrences).model_dump()
    assert orjson.dumps(data) == orjson.dumps(dumped)
