"""The Arrow memory pool of the processes that read and scan data (worker, API, BYOC scan-worker).

pyarrow's default pool on Linux is mimalloc, which hands freed pages back to the OS within
milliseconds, so every scan's tables are built in fresh pages that fault in on first touch. Where a
fault is dear (a VM that backs its memory lazily, as this project's CI machines do) that cost more
than the work: planning a 1M-record scan took 2.8 s with mimalloc and 0.6 s with jemalloc, which
pyarrow ships too and which here keeps freed pages for a minute, for the next scan.
"""
from __future__ import annotations

import pyarrow as pa

KEEP_FREED_MS = 60_000  # an idle process gives its freed pages back after this


def keep_freed_pages() -> None:
    try:
        pa.jemalloc_set_decay_ms(KEEP_FREED_MS)
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc keeps its default pool
        pass
