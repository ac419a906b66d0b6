"""LLM Assist in a sensitive-data chunk (services.runners.sensitive.run_chunk): the findings of a group of
files whose detector confidence is below SCANLEDGER_LLM_CONFIDENCE_THRESHOLD get a verdict from the
configured chat-completions endpoint before they are published, so the verdict is part of the finding's
event (services.domain.llm_review builds the requests and reads the answers; services.adapters.llm sends them).

Nothing here fails a chunk or drops a finding: a batch the endpoint does not answer usefully leaves its
findings `not_reviewed` with the detector's confidence, and after one such batch the rest of the chunk is
not sent (an endpoint that is down costs one batch's timeouts and retries per chunk, not one per group).

A group's verdicts are remembered under the data dir (llm-verdicts/, keyed by the scan and the group's
finding ids) before they are published: a retried chunk reads them back and publishes the same events
rather than asking again (docs/decisions.md, "LLM Assist").
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson

from services.adapters.llm import ChatCompletions, LlmUnavailable
from services.domain import llm_review as lr
from services.domain.detectors import Finding
from services.settings import Settings

log = logging.getLogger("scanledger.llm")


class Reviewer:
    def __init__(self, scan_id: str, settings: Settings, client: ChatCompletions | None):
        self.scan_id, self.settings, self.client = scan_id, settings, client
        self.model = settings.llm_model if client is not None else None
        self.down = client is None
        self.memo_dir = settings.data_dir / "llm-verdicts"

    @classmethod
    def for_work(cls, work: dict, settings: Settings) -> Reviewer | None:
        """The chunk's reviewer when its scan asked for LLM Assist (None otherwise). A worker without an
        endpoint configured still marks what it would have sent `not_reviewed`."""
        if not work.get("llm_assist"):
            return None
        problem = settings.llm_unconfigured()
        if problem:
            log.warning("chunk %s asked for LLM Assist, but this worker cannot: %s", work["unit_id"], problem)
            return cls(work["scan_id"], settings, None)
        return cls(work["scan_id"], settings, ChatCompletions(
            settings.llm_base_url, settings.llm_model, settings.llm_api_key_env, timeout_s=settings.llm_timeout_s,
            max_attempts=settings.llm_max_attempts))

    def review(self, files: list[dict], outcomes: list[tuple], finding_id: Callable[[str, str, Finding], str]
               ) -> dict[str, lr.Verdict]:
        """Verdicts, by finding id, for the findings of these files (outcomes: (status, reason, size,
        findings) each) below the threshold; the others have none."""
        todo: dict[str, tuple[dict, Finding]] = {}
        for file, outcome in zip(files, outcomes, strict=True):
            for f in outcome[3]:
                if lr.needs_review(f.confidence, self.settings.llm_confidence_threshold):
                    todo.setdefault(finding_id(file["connector_id"], file["name"], f), (file, f))
        if not todo:
            return {}
        memo = self._memo_path(sorted(todo))
        remembered = self._recall(memo)
        if remembered is not None and set(remembered) == set(todo):
            return remembered
        verdicts = self._ask(todo)
        self._remember(memo, verdicts)
        return verdicts

    def _ask(self, todo: dict[str, tuple[dict, Finding]]) -> dict[str, lr.Verdict]:
        fids = list(todo)
        verdicts = dict.fromkeys(fids, lr.NOT_REVIEWED_VERDICT)
        for batch in lr.batches(list(enumerate(fids, start=1)), self.settings.llm_batch_size):
            if self.down:
                break
            items = [lr.item(n, detector=f.detector, family=f.family, confidence=f.confidence, masked=f.masked,
                             file_name=file["name"], column=f.column if f.line is None else None)
                     for n, fid in batch for file, f in (todo[fid],)]
            try:
                answer = self.client.complete(lr.request_body(self.model, items))
            except LlmUnavailable as exc:
                log.warning("scan %s: the LLM endpoint gave no verdicts (%s); the chunk's other findings are not"
                            " sent", self.scan_id, exc)
                self.down = True
                break
            got = lr.parse_verdicts(lr.completion_text(answer), [n for n, _ in batch])
            if len(got) < len(batch):
                log.warning("scan %s: the LLM answered %d verdicts usable of %d asked", self.scan_id, len(got),
                            len(batch))
            for n, fid in batch:
                if n in got:
                    verdicts[fid] = got[n]
        return verdicts

    def _memo_path(self, fids: list[str]) -> Path:
        key = hashlib.sha256(orjson.dumps([self.scan_id, fids])).hexdigest()
        return self.memo_dir / key[:2] / key

    def _recall(self, path: Path) -> dict[str, lr.Verdict] | None:
        try:
            raw = orjson.loads(path.read_bytes())
            return {fid: lr.Verdict(v, c) for fid, (v, c) in raw.items() if v in lr.VERDICTS}
        except (OSError, orjson.JSONDecodeError, TypeError, ValueError):
            return None

    def _remember(self, path: Path, verdicts: dict[str, lr.Verdict]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps({fid: [v.verdict, v.llm_confidence] for fid, v in verdicts.items()}))
            os.replace(tmp, path)
        except OSError:  # a retry would ask again: the first verdict published still wins (same event id)
            log.warning("scan %s: LLM verdicts not remembered", self.scan_id, exc_info=True)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
