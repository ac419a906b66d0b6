"""Python's cyclic garbage collector held off while a process builds or holds many acyclic objects."""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused():
    """The cyclic collector off for the block. Decoded events are acyclic dicts that reference counting
    frees; each collector pass re-scans all those still alive, so a block that decodes tens of thousands
    of them (a projector's batch) or keeps them all (verify's log) spends more in the collector than in
    decoding (at Python's thresholds; at a pass per 100k allocations, still a third of replay). Around
    the block it runs as usual."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
