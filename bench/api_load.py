"""Concurrent API readers and per-process memory, for the scan benches.

`Readers` runs N clients (asyncio tasks over one httpx.AsyncClient, in a thread of its own) that read
a scan's status, a page of its violations and the operations list in turn, as a dashboard does,
timing every request; `peak_rss_mb` reads each process's peak resident set from /proc.
"""
from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path

import httpx


class Readers:
    """`with Readers(base_url, token, scan_id, 20) as r: ...` reads while the block runs; then
    r.summary() is (p50 ms, p99 ms, requests/s, errors)."""

    def __init__(self, base_url: str, token: str, scan_id: str, clients: int = 20):
        self.base_url, self.token, self.scan_id, self.clients = base_url, token, scan_id, clients
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Readers:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._elapsed = time.perf_counter() - self._started

    async def _run(self) -> None:
        scan = f"/api/scan/{self.scan_id}"
        paths = [scan, f"{scan}/violations?limit=50", "/api/operations?limit=20"]
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        async with httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"},
                                     limits=limits, timeout=60) as client:
            async def reader(offset: int) -> None:
                i = offset
                while not self._stop.is_set():
                    started = time.perf_counter()
                    response = await client.get(paths[i % len(paths)])
                    self.latencies.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        self.errors += 1
                    i += 1
            await asyncio.gather(*(reader(n) for n in range(self.clients)))

    def summary(self) -> tuple[float, float, float, int]:
        samples = self.latencies if len(self.latencies) > 1 else [*self.latencies, float("nan")] * 2
        q = statistics.quantiles(samples, n=100)
        return q[49] * 1000, q[98] * 1000, len(self.latencies) / self._elapsed, self.errors


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
