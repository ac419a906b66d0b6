"""The API over HTTP (httpx), at SCANLEDGER_URL with SCANLEDGER_TOKEN: every failure a ClientError
that says in one line what to fix."""
from __future__ import annotations

import os
import time
from pathlib import Path

import httpx


class ClientError(Exception):
    """What went wrong, in one line, for the user: the CLI prints it and exits 2."""




def api_url() -> str:
    return os.environ.get("SCANLEDGER_URL") or f"http://127.0.0.1:{os.environ.get('SCANLEDGER_PORT') or 8000}"


def api_token() -> str | None:
    token = os.environ.get("SCANLEDGER_TOKEN")
    if token:
        return token
    kept = Path(os.environ.get("SCANLEDGER_DATA_DIR") or ".scanledger") / "admin-token"
    try:
        return kept.read_text().strip() or None
    except OSError:
        return None


def error_message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:300] or r.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # an enveloped error
        body = body["error"]
    if not isinstance(body, dict):
        return str(body)[:300]
    message = str(body.get("message") or body.get("error") or r.reason_phrase)
    details = body.get("details") or []
    if isinstance(details, list) and details:
        shown = "; ".join(f"{'.'.join(map(str, d.get('path', [])))}: {d.get('message')}"
                          if isinstance(d, dict) else str(d) for d in details[:3])
        message += f" ({shown}{'; …' if len(details) > 3 else ''})"
    return message


class Api:
    """An httpx client whose failures are ClientErrors that say what to fix."""

    def __init__(self):
        self.url = api_url().rstrip("/")
        token = api_token()
        self._http = httpx.Client(base_url=self.url, timeout=60,
                                  headers={"Authorization": f"Bearer {token}"} if token else {})

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_) -> None:
        self._http.close()

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 202), patience_s: float = 0,
             **kwargs) -> httpx.Response:
        """`patience_s`: how long a read goes on trying through an API that restarts or answers 503."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                r = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                raise ClientError(f"cannot reach the API at {self.url} ({type(exc).__name__}: {exc}); "
                                  "is it running? set SCANLEDGER_URL to its address") from None
            if r.status_code in (502, 503, 504) and time.monotonic() < deadline:
                time.sleep(1)
                continue
            break
        if r.status_code in ok:
            return r
        if r.status_code == 401:
            raise ClientError(f"the API at {self.url} refused the token (401: {error_message(r)}); "
                              "set SCANLEDGER_TOKEN to a valid token")
        raise ClientError(f"{method} {path}: {r.status_code} {error_message(r)}")

    def json(self, method: str, path: str, **kwargs):
        return self.call(method, path, **kwargs).json()
