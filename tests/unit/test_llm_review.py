"""LLM Assist (seed 004, llm_assist): the prompt holds only masked context, the answer is read strictly,
a verdict adjusts the confidence, and a chunk keeps every finding whatever the endpoint does."""
from __future__ import annotations

from typing import ClassVar

import orjson
import pytest

from harness.corpus import generate
from services.adapters.file_cells import Limits, scan_files
from services.adapters.llm import LlmUnavailable
from services.domain import contracts as c
from services.domain import llm_review as lr
from services.domain.detectors import Engine, Finding
from services.domain.kinds import SENSITIVE
from services.runners import llm_assist
from services.runners.sensitive import finding_id, plan_sensitive, run_chunk
from services.settings import Settings
from tests.unit.test_sensitive import Published, command, request, store

RAW = "jane.doe@example.com"


def finding(**kw) -> Finding:
    return Finding(**{"detector": "email", "family": "email", "confidence": 0.85, "masked": "j*******@example.com",
                      "row": 3, "column": "contact", **kw})


def test_the_prompt_holds_the_masked_sample_and_never_the_raw_value():
    [f] = [x for x in Engine().scan_text(f"please write to {RAW} today") if x.family == "email"]
    assert RAW not in f.masked
    items = [lr.item(1, detector=f.detector, family=f.family, confidence=f.confidence, masked=f.masked,
                     file_name="exports/customers-jane.doe.csv.gz", column=None)]
    body = lr.request_body("m", items)
    text = orjson.dumps(body).decode()
    assert RAW not in text and "please write" not in text and "customers-jane" not in text  # nor its line or file
    user = body["messages"][1]["content"]
    assert f.masked in user and '"file_type":"csv.gz"' in user and '"location":"line of text"' in user
    assert body["model"] == "m" and [m["role"] for m in body["messages"]] == ["system", "user"]
    assert orjson.loads(body["messages"][1]["content"])["findings"][0] == {
        "id": 1, "detector": f.detector, "family": "email", "detector_confidence": f.confidence,
        "masked_sample": f.masked, "file_type": "csv.gz", "column": None, "location": "line of text"}


def test_a_corpus_prompt_holds_no_planted_value():
    corpus = generate(seed=5, files=6, rows=30)
    items = []
    for file, scanned in zip(corpus.files, scan_files([(f.data, f.name) for f in corpus.files], Engine(), Limits()),
                             strict=True):
        for f in scanned.findings:
            items.append(lr.item(len(items) + 1, detector=f.detector, family=f.family, confidence=f.confidence,
                                 masked=f.masked, file_name=file.name, column=f.column))
    assert len(items) >= 50
    text = orjson.dumps(lr.request_body("m", items)).decode()
    leaked = [v for _, v in corpus.planted_values if len(v) >= 6 and v in text]
    assert leaked == []


@pytest.mark.parametrize("name, kind", [("a/b/report.CSV", "csv"), ("x.json.gz", "json.gz"), ("noext", "unknown"),
                                        ("weird.c$v", "unknown"), ("t.parquet", "parquet")])
def test_file_type_is_the_extension_only(name, kind):
    assert lr.file_type(name) == kind


def test_good_answers_are_read():
    answer = {"choices": [{"message": {"role": "assistant", "content": orjson.dumps({"verdicts": [
        {"id": 1, "verdict": "confirm", "confidence": 0.9}, {"id": 2, "verdict": "reject", "confidence": 0.75}]
    }).decode()}}]}
    got = lr.parse_verdicts(lr.completion_text(answer), [1, 2])
    assert got == {1: lr.Verdict(lr.CONFIRMED, 0.9), 2: lr.Verdict(lr.REJECTED, 0.75)}
    fenced = 'Here you go:\n```json\n{"verdicts": [{"id": "2", "verdict": "Rejected", "confidence": 1}]}\n```'
    assert lr.parse_verdicts(fenced, [1, 2]) == {2: lr.Verdict(lr.REJECTED, 1.0)}
    assert lr.parse_verdicts('[{"id": 1, "verdict": "confirmed", "confidence": 0.5}]', [1]) == {
        1: lr.Verdict(lr.CONFIRMED, 0.5)}


@pytest.mark.parametrize("text", [None, "", "not json", "{}", '{"verdicts": 3}', '{"verdicts": [1, "x"]}',
                                  '{"verdicts": [{"id": 9, "verdict": "confirm", "confidence": 0.5}]}',
                                  '{"verdicts": [{"id": 1, "verdict": "maybe", "confidence": 0.5}]}',
                                  '{"verdicts": [{"id": 1, "verdict": "confirm", "confidence": 1.5}]}',
                                  '{"verdicts": [{"id": 1, "verdict": "confirm", "confidence": "high"}]}',
                                  '{"verdicts": [{"id": 1, "verdict": "confirm", "confidence": true}]}',
                                  '{"verdicts": [{"id": true, "verdict": "confirm", "confidence": 0.5}]}',
                                  '{"verdicts": [{"verdict": "confirm", "confidence": 0.5}]}'])
def test_bad_answers_give_no_verdict(text):
    assert lr.parse_verdicts(text, [1]) == {}


def test_the_first_verdict_of_an_id_counts_and_the_others_are_kept():
    text = orjson.dumps({"verdicts": [{"id": 1, "verdict": "reject", "confidence": 0.6},
                                      {"id": 1, "verdict": "confirm", "confidence": 0.9},
                                      {"id": 2, "verdict": "nope", "confidence": 0.9}]}).decode()
    assert lr.parse_verdicts(text, [1, 2]) == {1: lr.Verdict(lr.REJECTED, 0.6)}
    assert lr.completion_text({"choices": []}) is None and lr.completion_text({"x": 1}) is None
    assert lr.completion_text("text") is None


def test_a_verdict_adjusts_the_confidence():
    assert lr.adjusted_confidence(0.8, lr.Verdict(lr.CONFIRMED, 0.95)) == 0.95
    assert lr.adjusted_confidence(0.8, lr.Verdict(lr.CONFIRMED, 0.6)) == 0.8
    assert lr.adjusted_confidence(0.8, lr.Verdict(lr.REJECTED, 0.9)) == 0.1
    assert lr.adjusted_confidence(0.05, lr.Verdict(lr.REJECTED, 0.5)) == 0.05
    assert lr.adjusted_confidence(0.8, lr.NOT_REVIEWED_VERDICT) == 0.8
    assert lr.needs_review(0.85, 0.9) and not lr.needs_review(0.9, 0.9)
    assert lr.batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]


class FakeEndpoint:
    """Stands in for services.adapters.llm.ChatCompletions: records requests, answers by a rule."""
    requests: ClassVar[list] = []
    mode = "confirm"

    def __init__(self, *a, **kw):
        pass

    def complete(self, body: dict) -> dict:
        FakeEndpoint.requests.append(body)
        if FakeEndpoint.mode == "down":
            raise LlmUnavailable("HTTP 500 after 3 attempts")
        items = orjson.loads(body["messages"][1]["content"])["findings"]
        verdicts = [{"id": i["id"], "verdict": "reject" if i["family"] == "phone" else "confirm", "confidence": 0.9}
                    for i in items]
        return {"choices": [{"message": {"content": orjson.dumps({"verdicts": verdicts}).decode()}}]}

    def close(self):
        pass


@pytest.fixture
def chunk(tmp_path, monkeypatch):
    corpus = generate(seed=3, files=6, rows=30)
    root = tmp_path / "root"
    for f in corpus.files:
        (root / "lake" / f.name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lake" / f.name).write_bytes(f.data)
    settings = Settings(data_dir=tmp_path / "data", datastore_root=root, llm_base_url="http://llm.invalid/v1",
                        llm_model="test-model", llm_confidence_threshold=1.0, llm_batch_size=7)
    connector = {"id": "conn-a", "name": "A", "type": "local_dir",
                 "config": {"path": "lake", "resolved_path": str(root / "lake")}}
    req = {**request(max_workers=1, llm_assist=True), "connectors": [connector]}
    plan = plan_sensitive(req, store(settings), settings)
    [work] = SENSITIVE.work(command(req), req, plan.units)
    assert work["data"]["llm_assist"] is True
    monkeypatch.setattr(llm_assist, "ChatCompletions", FakeEndpoint)
    FakeEndpoint.requests, FakeEndpoint.mode = [], "confirm"
    return corpus, settings, work, req, plan


def findings_of(out):
    return {e["data"]["finding_id"]: {"id": e["id"], "data": e["data"]} for e in out.of(c.FINDING_DETECTED)}


def test_a_chunk_publishes_each_findings_verdict_and_a_retry_the_same_events(chunk):
    corpus, settings, work, _, _ = chunk
    out = Published()
    run_chunk(work, store(settings), out, settings)
    found = findings_of(out)
    assert found and FakeEndpoint.requests
    assert all(len(orjson.loads(b["messages"][1]["content"])["findings"]) <= 7 for b in FakeEndpoint.requests)
    sent = orjson.dumps(FakeEndpoint.requests).decode()
    assert not [v for _, v in corpus.planted_values if len(v) >= 6 and v in sent]
    for e in found.values():
        d = e["data"]
        assert d["detector_confidence"] is not None and d["llm_model"] == "test-model"
        if d["family"] == "phone":
            assert d["llm_verdict"] == "rejected" and d["confidence"] == round(min(d["detector_confidence"], 0.1), 4)
        else:
            assert d["llm_verdict"] == "confirmed" and d["confidence"] == max(d["detector_confidence"], 0.9)
    asked = len(FakeEndpoint.requests)
    FakeEndpoint.mode = "down"  # a retried chunk reads its verdicts back: no request, the same events
    again = Published()
    run_chunk(work, store(settings), again, settings)
    assert len(FakeEndpoint.requests) == asked
    assert findings_of(again) == found


def test_an_endpoint_that_is_down_loses_no_finding(chunk):
    _, settings, work, req, plan = chunk
    FakeEndpoint.mode = "down"
    out = Published()
    run_chunk(work, store(settings), out, settings)
    found = findings_of(out)
    assert found and len(FakeEndpoint.requests) == 1  # one batch failed: the rest of the chunk is not sent
    for e in found.values():
        d = e["data"]
        assert d["llm_verdict"] == "not_reviewed" and d["confidence"] == d["detector_confidence"]
        assert d["llm_confidence"] is None and d["llm_model"] is None
    plain = Published()
    no_llm = {**req, "options": {**req["options"], "llm_assist": False}}
    run_chunk(SENSITIVE.work(command(no_llm), no_llm, plan.units)[0], store(settings), plain, settings)
    assert set(findings_of(plain)) == set(found)  # the same finding ids with or without LLM Assist
    assert all(e["data"]["llm_verdict"] is None for e in findings_of(plain).values())


def test_a_worker_without_an_endpoint_marks_findings_not_reviewed(chunk):
    _, settings, work, _, _ = chunk
    bare = Settings(data_dir=settings.data_dir, datastore_root=settings.datastore_root,
                    llm_confidence_threshold=1.0)
    out = Published()
    run_chunk(work, store(bare), out, bare)
    assert FakeEndpoint.requests == []
    assert {e["data"]["llm_verdict"] for e in out.of(c.FINDING_DETECTED)} == {"not_reviewed"}


def test_only_findings_below_the_threshold_are_sent(tmp_path):
    settings = Settings(data_dir=tmp_path, llm_confidence_threshold=0.9)
    reviewer = llm_assist.Reviewer("scan-x", settings, FakeEndpoint())
    FakeEndpoint.requests, FakeEndpoint.mode = [], "confirm"
    sure, unsure = finding(confidence=0.99, start=0), finding(confidence=0.85, start=5)
    file = {"connector_id": "c", "name": "a.csv"}
    got = reviewer.review([file], [("scanned", None, 1, [sure, unsure])], finding_id)
    assert set(got) == {finding_id("c", "a.csv", unsure)}
    [body] = FakeEndpoint.requests
    assert [i["detector_confidence"] for i in orjson.loads(body["messages"][1]["content"])["findings"]] == [0.85]


def test_settings_say_what_to_set(monkeypatch):
    assert "SCANLEDGER_LLM_BASE_URL and SCANLEDGER_LLM_MODEL" in Settings().llm_unconfigured()
    assert "SCANLEDGER_LLM_MODEL" in Settings(llm_base_url="http://x/v1").llm_unconfigured()
    assert Settings(llm_base_url="http://x/v1", llm_model="m").llm_unconfigured() is None
    assert "http(s)" in Settings(llm_base_url="file:///etc", llm_model="m").llm_unconfigured()
    monkeypatch.delenv("TEST_LLM_KEY", raising=False)
    s = Settings(llm_base_url="http://x/v1", llm_model="m", llm_api_key_env="TEST_LLM_KEY")
    assert "TEST_LLM_KEY" in s.llm_unconfigured()
    monkeypatch.setenv("TEST_LLM_KEY", "sk-secret-value")
    assert s.llm_unconfigured() is None and "sk-secret-value" not in repr(s)
    monkeypatch.setenv("SCANLEDGER_LLM_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("SCANLEDGER_LLM_MODEL", "m")
    monkeypatch.setenv("SCANLEDGER_LLM_API_KEY_ENV", "TEST_LLM_KEY")
    s = Settings.from_env()
    assert (s.llm_base_url, s.llm_model, s.llm_api_key_env) == ("http://127.0.0.1:9/v1", "m", "TEST_LLM_KEY")
    assert "sk-secret-value" not in repr(s)
