"""LLM Assist (seed 004, `llm_assist: true`): a second opinion on low-confidence findings, pure part.

A finding whose detector confidence is below the threshold is sent, with others, to an
OpenAI-compatible chat-completions endpoint (services.adapters.llm does the HTTP; the service
layer, services.runners.llm_assist, batches and remembers). This module builds the request and reads
the answer, and decides what a verdict changes:

- Only masked context ever leaves: the masked sample (the same the API shows), the detector and
  its family, the detector's confidence, the file's type (its extension, never its name) and the
  column name (tabular data) or that it was a line of text. Never the raw value, its cell or line.
- The model answers JSON, `{"verdicts": [{"id": n, "verdict": "confirm"|"reject", "confidence": p}]}`;
  anything else (bad JSON, an unknown id, a verdict or confidence out of range) leaves that finding
  not reviewed, never fails it.
- A confirmed finding's confidence becomes max(detector, p); a rejected one's min(detector, 1 - p).
  Both stay on the ledger, with `llm_verdict` (confirmed, rejected, not_reviewed) beside it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

CONFIRMED, REJECTED, NOT_REVIEWED = "confirmed", "rejected", "not_reviewed"
VERDICTS = (CONFIRMED, REJECTED, NOT_REVIEWED)
_ANSWERS = {"confirm": CONFIRMED, "confirmed": CONFIRMED, "reject": REJECTED, "rejected": REJECTED}
MAX_COLUMN_CHARS = 120
MAX_FILE_TYPE_CHARS = 20

SYSTEM_PROMPT = (
    "You review candidate findings of a sensitive-data scanner (PII, payment data, secrets). You never see "
    "the values themselves: each finding gives the scanner's detector and family, its confidence, a MASKED "
    "sample of the value, the file type and the column name (or that it was a line of free text). Decide, "
    "for each finding, whether it is plausibly a true finding of that detector (confirm) or a false positive "
    "(reject), and how sure you are (0 to 1). Answer with JSON only, no prose: "
    '{"verdicts": [{"id": <the finding\'s id>, "verdict": "confirm" or "reject", "confidence": <0..1>}]}, '
    "one entry per finding."
)


@dataclass(frozen=True)
class Item:
    """What the model may see of one finding: masked context only (no raw value, no file name)."""
    id: int
    detector: str
    family: str
    confidence: float
    masked: str
    file_type: str
    column: str | None  # None: a line of text

    def public(self) -> dict:
        return {"id": self.id, "detector": self.detector, "family": self.family,
                "detector_confidence": self.confidence, "masked_sample": self.masked,
                "file_type": self.file_type, "column": self.column,
                "location": "line of text" if self.column is None else "table cell"}


@dataclass(frozen=True)
class Verdict:
    verdict: str  # CONFIRMED, REJECTED or NOT_REVIEWED
    llm_confidence: float | None = None  # the model's, in its verdict


NOT_REVIEWED_VERDICT = Verdict(NOT_REVIEWED)


def needs_review(confidence: float, threshold: float) -> bool:
    return confidence < threshold


def file_type(name: str) -> str:
    """A file's type as the model may see it: its extension(s) (`csv`, `json.gz`), never its name."""
    base = name.rsplit("/", 1)[-1]
    parts = base.split(".")[1:]
    if parts and parts[-1].lower() in ("gz", "bz2", "zst") and len(parts) >= 2:
        kind = ".".join(parts[-2:])
    else:
        kind = parts[-1] if parts else ""
    kind = kind.lower()
    return kind if re.fullmatch(rf"[a-z0-9.]{{1,{MAX_FILE_TYPE_CHARS}}}", kind) else "unknown"


def item(id_: int, *, detector: str, family: str, confidence: float, masked: str, file_name: str,
         column: str | None) -> Item:
    return Item(id=id_, detector=detector, family=family, confidence=confidence, masked=masked,
                file_type=file_type(file_name), column=None if column is None else column[:MAX_COLUMN_CHARS])


def messages(items: list[Item]) -> list[dict]:
    """The chat messages asking for a verdict on each item (one request holds a batch)."""
    user = orjson.dumps({"findings": [i.public() for i in items]}).decode()
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def request_body(model: str, items: list[Item]) -> dict:
    """The chat-completions request body (POST {base}/chat/completions)."""
    return {"model": model, "messages": messages(items), "temperature": 0}


def completion_text(response: object) -> str | None:
    """choices[0].message.content of a chat-completions response, or None when it has none."""
    try:
        content = response["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _json_object(text: str) -> object:
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    first, last = text.find("{"), text.rfind("}")
    if 0 <= first < last:
        candidates.append(text[first:last + 1])
    for candidate in candidates:
        try:
            return orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
    return None


def parse_verdicts(text: str | None, ids: list[int]) -> dict[int, Verdict]:
    """The verdicts of a model's answer, by item id; an item the answer gives no valid verdict for is
    missing (the caller marks it not reviewed). The first entry of an id counts."""
    if not text:
        return {}
    doc = _json_object(text)
    entries = doc.get("verdicts") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        return {}
    wanted, out = set(ids), {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        id_, answer, conf = entry.get("id"), entry.get("verdict"), entry.get("confidence")
        if isinstance(id_, str) and id_.isdigit():
            id_ = int(id_)
        if isinstance(id_, bool) or not isinstance(id_, int) or id_ not in wanted or id_ in out:
            continue
        verdict = _ANSWERS.get(answer.strip().lower()) if isinstance(answer, str) else None
        if verdict is None or isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
            continue
        out[id_] = Verdict(verdict, round(float(conf), 4))
    return out


def adjusted_confidence(detector_confidence: float, verdict: Verdict) -> float:
    """The finding's confidence after the verdict: confirmed max(detector, p), rejected min(detector, 1 - p),
    not reviewed the detector's."""
    if verdict.verdict == CONFIRMED and verdict.llm_confidence is not None:
        return round(max(detector_confidence, verdict.llm_confidence), 4)
    if verdict.verdict == REJECTED and verdict.llm_confidence is not None:
        return round(min(detector_confidence, 1 - verdict.llm_confidence), 4)
    return detector_confidence


def batches(items: list, size: int) -> list[list]:
    size = max(1, size)
    return [items[i:i + size] for i in range(0, len(items), size)]
