"""The audit commands' progress: a bar on stderr while they read the log, their throughput at the end."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


class Meter:
    """Counts what a reader reports (services.adapters.ledger_reader.Meter) and draws it with tqdm when
    stderr is a terminal (a CI log gets the summary line alone)."""

    def __init__(self, what: str, unit: str):
        self.count = 0
        self._bar = tqdm(desc=what, unit=f" {unit}", unit_scale=True, total=0, file=sys.stderr,
                         disable=not sys.stderr.isatty(), dynamic_ncols=True)

    @property
    def total(self) -> float | None:
        return self._bar.total

    @total.setter
    def total(self, value: float | None) -> None:
        self._bar.total = value
        self._bar.refresh()

    def update(self, n: int) -> None:
        self.count += n
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


@contextmanager
def metered(what: str, unit: str = "records") -> Iterator[Meter]:
    """A Meter, and at the end `<what>: N <unit> in S s (R <unit>/s)` on stderr."""
    started = time.perf_counter()
    meter = Meter(what, unit)
    try:
        yield meter
    finally:
        meter.close()
        elapsed = time.perf_counter() - started
        rate = meter.count / elapsed if elapsed else 0.0
        print(f"{what}: {meter.count:,} {unit} in {elapsed:.2f} s ({rate:,.0f} {unit}/s)", file=sys.stderr)
