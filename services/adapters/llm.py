"""An OpenAI-compatible chat-completions endpoint (LLM Assist): one POST, with a timeout and bounded retries.

`ChatCompletions(base_url, model, api_key_env, timeout_s, max_attempts).complete(body)` sends
`POST {base_url}/chat/completions` and gives the parsed JSON answer, or raises `LlmUnavailable`
after `max_attempts` tries of a connection error, a timeout, a 408, 429 or 5xx (backing off
between them), or at once on any other status or a body that is not JSON. The API key is read
from the environment variable `api_key_env` names when a request is sent; it is kept in no
attribute, log line or exception message (errors name the status or the error's kind only).
"""
from __future__ import annotations

import logging
import os
import time

import httpx
import orjson

log = logging.getLogger("scanledger.llm")
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_S = 0.5


class LlmUnavailable(Exception):
    """The endpoint gave no usable answer (its kind only: never a header or the key)."""


class ChatCompletions:
    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, *, timeout_s: float = 30.0,
                 max_attempts: int = 3, backoff_s: float = BACKOFF_S):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.max_attempts, self.backoff_s = max(1, max_attempts), backoff_s
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                                   follow_redirects=False, trust_env=False)

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def complete(self, body: dict) -> dict:
        payload = orjson.dumps(body)
        problem = "no attempt"
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                time.sleep(self.backoff_s * 2 ** (attempt - 2))
            try:
                r = self.client.post(self.url, content=payload, headers=self._headers())
            except httpx.HTTPError as exc:  # connection refused, timeouts, a broken answer
                problem = type(exc).__name__
                log.warning("LLM endpoint attempt %d/%d: %s", attempt, self.max_attempts, problem)
                continue
            if r.status_code in RETRIED_STATUSES:
                problem = f"HTTP {r.status_code}"
                log.warning("LLM endpoint attempt %d/%d: %s", attempt, self.max_attempts, problem)
                continue
            if r.status_code != 200:
                raise LlmUnavailable(f"HTTP {r.status_code}")
            try:
                return orjson.loads(r.content)
            except orjson.JSONDecodeError:
                raise LlmUnavailable("an answer that is not JSON") from None
        raise LlmUnavailable(f"{problem} after {self.max_attempts} attempts")

    def close(self) -> None:
        self.client.close()
