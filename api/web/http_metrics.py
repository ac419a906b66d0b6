"""HTTP latency per route, for GET /metrics, and the access log: a pure ASGI middleware.

This histogram is per process, as Prometheus expects: each API process is scraped on its own
and the scrapes add up. The label is the route's template (`/api/scan/{id}`), never the raw path,
so a scanner's ids cannot blow up the series; a path no route matched counts as `other`.
"""
from __future__ import annotations

import logging
import time

from prometheus_client import Histogram

access = logging.getLogger("scanledger.access")  # a line per request; JSON with SCANLEDGER_LOG_FORMAT=json
REQUEST_SECONDS = Histogram(
    "scanledger_http_request_duration_seconds", "Time to answer an HTTP request (per API process)",
    ("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


class HttpMetrics:
    def __init__(self, app, routes=()):
        self.app = app
        self.templates = {id(r.endpoint): r.path for r in routes if hasattr(r, "endpoint")}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            took = time.perf_counter() - started
            route = self.templates.get(id(scope.get("endpoint")), "other")
            REQUEST_SECONDS.labels(scope["method"], route, str(status[0])).observe(took)
            client = scope.get("client")
            access.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0], took * 1000, extra={
                "method": scope["method"], "path": scope["path"], "route": route, "status": status[0],
                "duration_ms": round(took * 1000, 2), "client": client[0] if client else None})
