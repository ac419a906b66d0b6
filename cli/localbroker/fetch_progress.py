"""The first fetch's progress on stderr: on a terminal a rich bar counting bytes, otherwise (a CI log,
a log file) a few plain lines with no escape codes."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class FetchProgress:
    """`with FetchProgress(title, total_bytes) as p: p.advance(n)`; the closing line only on success."""

    def __init__(self, title: str, total: int, stream: TextIO | None = None):
        self.title, self.total, self.done = title, total, 0
        self.stream = stream or sys.stderr
        self._bar: Progress | None = None
        self._next_quarter = 1
        self._started = time.monotonic()

    def __enter__(self) -> FetchProgress:
        print(f"{self.title}: {_mb(self.total)}", file=self.stream, flush=True)
        if self.stream.isatty():
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(file=self.stream))
            self._bar.start()
            self._task = self._bar.add_task("fetching", total=self.total)
        return self

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
            return
        while self._next_quarter < 4 and self.done * 4 >= self._next_quarter * self.total:
            print(f"  {25 * self._next_quarter}% ({_mb(self.done)} of {_mb(self.total)})",
                  file=self.stream, flush=True)
            self._next_quarter += 1

    def __exit__(self, kind, value, traceback) -> None:
        if self._bar is not None:
            self._bar.stop()
        if kind is None:
            print(f"fetched {_mb(self.done)} in {time.monotonic() - self._started:.1f} s",
                  file=self.stream, flush=True)
