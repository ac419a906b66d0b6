"""LLM Assist (seed 004, `llm_assist: true`) on the real system (broker, worker, projector, API) against a
small chat-completions server run by the test (a real HTTP server on a free port): every finding below the
threshold gets the model's verdict on the ledger and in GET …/findings, the server never receives a raw
value, a file name or the API key in a body, and a server answering 500 leaves every finding of a scan
that still completes, marked not reviewed. Waits poll until the system answers: no time limits."""
from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from harness.corpus import generate
from harness.system import System
from tests.e2e.monitor_fixtures import in_workspace
from tests.e2e.test_sensitive_scans import FILE_TYPES, ok, settled

KEY_ENV, KEY = "SCANLEDGER_TEST_LLM_KEY", "sk-test-llm-key-never-anywhere-else"


class ChatCompletions:
    """A chat-completions endpoint: POST /v1/chat/completions. `mode` "ok" confirms every finding but the
    phone numbers (rejected, 0.8 sure); "fail" answers 500. It keeps every request (headers, body)."""

    def __init__(self):
        self.mode, self.requests, self.lock = "ok", [], threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path != "/v1/chat/completions":
                    return self._answer(404, {"error": {"message": "not found"}})
                if owner.mode == "fail":
                    return self._answer(500, {"error": {"message": "the model is down"}})
                req = orjson.loads(body)
                findings = orjson.loads(req["messages"][-1]["content"])["findings"]
                verdicts = [{"id": f["id"], "verdict": "reject" if f["family"] == "phone" else "confirm",
                             "confidence": 0.8 if f["family"] == "phone" else 0.97} for f in findings]
                content = "```json\n" + orjson.dumps({"verdicts": verdicts}).decode() + "\n```"
                return self._answer(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": req["model"],
                                          "choices": [{"index": 0, "finish_reason": "stop",
                                                       "message": {"role": "assistant", "content": content}}]})

            def _answer(self, status, doc):
                data = orjson.dumps(doc)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def taken(self) -> list[dict]:
        with self.lock:
            out, self.requests = self.requests, []
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(kafka, tmp_path_factory):
    llm = ChatCompletions()
    root = tmp_path_factory.mktemp("llm-root")
    corpus = generate(seed=17, files=8, rows=40)
    for f in corpus.files:
        (root / "lake" / f.name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lake" / f.name).write_bytes(f.data)
    system = System(kafka, tmp_path_factory.mktemp("llm-system"), SCANLEDGER_DATASTORE_ROOT=str(root),
                    SCANLEDGER_LLM_BASE_URL=llm.url, SCANLEDGER_LLM_MODEL="test-model",
                    SCANLEDGER_LLM_API_KEY_ENV=KEY_ENV, **{KEY_ENV: KEY},
                    SCANLEDGER_LLM_CONFIDENCE_THRESHOLD="1.0",  # every finding gets a second opinion
                    SCANLEDGER_LLM_BATCH_SIZE="8", SCANLEDGER_LLM_MAX_ATTEMPTS="2", SCANLEDGER_LLM_TIMEOUT="5")
    system.start()
    try:
        with in_workspace(system, "LLM") as a:
            lake = ok(a.admin.post("/api/v1/connectors", json={"name": "Lake", "type": "local_dir",
                                                                "config": {"path": "lake"}}), 201)
            yield {"system": system, "a": a, "llm": llm, "corpus": corpus, "lake": lake["id"]}
    finally:
        system.stop()
        llm.close()


def run(world, **options) -> tuple[dict, list[dict]]:
    client = world["a"].member
    body = {"connectors": [world["lake"]], "type": "full",
            "options": {"max_workers": 3, "file_types": FILE_TYPES, **options}}
    started = ok(client.post("/api/v1/scans/parallel", json=body), 201)
    done = settled(client, started["scan_id"])
    findings, cursor = [], None
    while True:
        r = client.get(f"/api/v1/scans/{started['scan_id']}/findings",
                       params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        findings += ok(r)
        if (cursor := r.json()["pagination"]["next_cursor"]) is None:
            return done, findings


@pytest.fixture(scope="module")
def assisted(world):
    world["llm"].taken()
    done, findings = run(world, llm_assist=True)
    return done, findings, world["llm"].taken()


def test_verdicts_show_on_findings_and_only_masked_context_is_sent(world, assisted):
    corpus = world["corpus"]
    done, findings, requests = assisted
    assert done["status"] == "completed", done
    assert done["options"]["llm_assist"] is True
    truth = Counter(family for _, _, family in corpus.truth)
    assert Counter(f["family"] for f in findings) == truth  # a rejected finding is still a finding
    assert done["progress"]["findings_count"] == len(findings)
    for f in findings:
        assert f["llm_model"] == "test-model" and f["detector_confidence"] is not None
        if f["family"] == "phone":
            assert (f["llm_verdict"], f["llm_confidence"]) == ("rejected", 0.8)
            assert f["confidence"] == round(min(f["detector_confidence"], 0.2), 4)
        else:
            assert (f["llm_verdict"], f["llm_confidence"]) == ("confirmed", 0.97)
            assert f["confidence"] == max(f["detector_confidence"], 0.97)
    assert {f["llm_verdict"] for f in findings} == {"confirmed", "rejected"}
    assert requests and all(r["path"] == "/v1/chat/completions" for r in requests)
    assert all(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in requests)
    sent = [orjson.loads(r["body"]) for r in requests]
    assert all(s["model"] == "test-model" for s in sent)
    items = [i for s in sent for i in orjson.loads(s["messages"][-1]["content"])["findings"]]
    assert len(items) == len(findings) and all(len(orjson.loads(s["messages"][-1]["content"])["findings"]) <= 8
                                               for s in sent)
    text = b"\n".join(r["body"] for r in requests).decode()
    prompt = "\n".join(m["content"] for s in sent for m in s["messages"])  # decoded: no JSON escapes
    for _, value in corpus.planted_values:  # no raw value from the corpus, in any form
        assert value not in prompt and value not in text, value
    for f in corpus.files:  # nor a file's name (only its type)
        assert f.name not in prompt
    assert KEY not in text
    assert {i["masked_sample"] for i in items} == {f["masked_sample"] for f in findings}
    system = world["system"]
    for log in ("worker", "projector", "api"):  # the key is in no log either
        assert KEY not in (system.data_dir / f"{log}.log").read_text(errors="replace")


def test_an_llm_answering_500_never_fails_the_scan_nor_loses_a_finding(world, assisted):
    llm = world["llm"]
    llm.mode = "fail"
    llm.taken()
    try:
        done, findings = run(world, llm_assist=True)
    finally:
        llm.mode = "ok"
    assert done["status"] == "completed", done
    truth = Counter(family for _, _, family in world["corpus"].truth)
    assert Counter(f["family"] for f in findings) == truth
    assert {f["llm_verdict"] for f in findings} == {"not_reviewed"}
    assert all(f["confidence"] == f["detector_confidence"] and f["llm_confidence"] is None and f["llm_model"] is None
               for f in findings)
    assert llm.taken()  # it was asked, and answered 500
    assert {f["finding_id"] for f in findings} == {f["finding_id"] for f in assisted[1]}  # the same ids


def test_without_llm_assist_nothing_is_sent_and_findings_carry_no_verdict(world, assisted):
    llm = world["llm"]
    llm.taken()
    done, findings = run(world)
    assert done["status"] == "completed" and done["options"]["llm_assist"] is False
    assert findings and {f["llm_verdict"] for f in findings} == {None}
    assert all(f["detector_confidence"] == f["confidence"] for f in findings)  # always set (issue 19)
    assert {f["finding_id"] for f in findings} == {f["finding_id"] for f in assisted[1]}
    assert llm.taken() == []
