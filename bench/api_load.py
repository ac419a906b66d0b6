"""Concurrent API readers and per-process memory, for the scan benches.

`Readers` runs N clients that read a scan's status, a page of its violations and the operations list
in turn, as a dashboard does, timing every request; `peak_rss_mb` reads each process's peak resident
set from /proc.

The clients run in a process of their own and speak HTTP/1.1 over keep-alive sockets with each
request's bytes built once. An httpx client in the bench's process cost more CPU than the API it
measured (20 clients: 0.67 cores against the API's 0.38, and its own queueing counted as the API's
latency), so the figures were the client's.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit


class Readers:
    """`with Readers(base_url, token, scan_id, 20) as r: ...` reads while the block runs; then
    r.summary() is (p50 ms, p99 ms, requests/s, errors) and r.requests the number answered."""

    def __init__(self, base_url: str, token: str, scan_id: str, clients: int = 20):
        scan = f"/api/scan/{scan_id}"
        self.paths = [scan, f"{scan}/violations?limit=50", "/api/operations?limit=20"]
        self.base_url, self.token, self.clients = base_url, token, clients
        context = multiprocessing.get_context("spawn")
        self._stop, self._results = context.Event(), context.Queue()
        self._process = context.Process(target=_run, args=(base_url, token, self.paths, clients, self._stop,
                                                           self._results), daemon=True)
        self.latencies: list[float] = []
        self.errors = 0
        self._elapsed = 0.0

    def __enter__(self) -> Readers:
        self._process.start()
        self._results.get()  # connected: the clock starts when every client can send
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.latencies, self.errors, self._elapsed = self._results.get()
        self._process.join()

    def summary(self) -> tuple[float, float, float, int]:
        samples = self.latencies if len(self.latencies) > 1 else [*self.latencies, float("nan")] * 2
        q = statistics.quantiles(samples, n=100)
        return q[49] * 1000, q[98] * 1000, len(self.latencies) / self._elapsed, self.errors

    @property
    def requests(self) -> int:
        return len(self.latencies)


def _run(base_url: str, token: str, paths: list[str], clients: int, stop, results) -> None:
    results.put(asyncio.run(_load(base_url, token, paths, clients, stop, results)))


async def _load(base_url: str, token: str, paths: list[str], clients: int, stop, results):
    url = urlsplit(base_url)
    requests = [(f"GET {p} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
                 "Accept: application/json\r\n\r\n").encode() for p in paths]
    connections = [await asyncio.open_connection(url.hostname, url.port) for _ in range(clients)]
    latencies: list[float] = []
    errors = 0
    done = asyncio.Event()

    async def reader(n: int, conn) -> None:
        nonlocal errors
        rx, tx = conn
        i = n
        while not done.is_set():
            started = time.perf_counter()
            tx.write(requests[i % len(requests)])
            status = await _response(rx)
            latencies.append(time.perf_counter() - started)
            errors += status != 200
            i += 1

    async def watch() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.02)
        done.set()

    results.put("connected")
    started = time.perf_counter()
    await asyncio.gather(watch(), *(reader(n, conn) for n, conn in enumerate(connections)))
    elapsed = time.perf_counter() - started
    for _, tx in connections:
        tx.close()
    return latencies, errors, elapsed


async def _response(rx: asyncio.StreamReader) -> int:
    """Read one response off a keep-alive connection (Content-Length or chunked); its status."""
    head = await rx.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await rx.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await rx.readuntil(b"\r\n")).strip(), 16):
            await rx.readexactly(size + 2)
        await rx.readuntil(b"\r\n")
    return status


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process and its children (the API's processes under
    SCANLEDGER_API_PROCESSES) have used so far, from /proc: per request, a figure the machine's
    other load moves far less than latency."""
    total = 0
    for p in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        total += int(fields[11]) + int(fields[12])  # utime, stime: clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), MB, with its children's (the API's processes under
    SCANLEDGER_API_PROCESSES; the sum of their peaks)."""
    return sum(_vm_hwm_mb(p) for p in (pid, *_children(pid)))


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
