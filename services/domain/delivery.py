"""Delivery bookkeeping of a shared producer, pure: which caller's messages are still unacked
or failed, and when a producer counts as stalled (services/adapters/kafka.py `Publisher`).

One producer serves several callers at once (the coordinator, two evaluators, the dead
letters): each caller's messages since its last flush are a `Batch`, so a caller's flush
waits for its own messages and raises for its own failures, never for (or instead of)
another's. The caller holds the lock that guards a batch.
"""
from __future__ import annotations


class Batch:
    """The messages one caller published since its last flush."""

    __slots__ = ("closed", "errors", "pending")

    def __init__(self) -> None:
        self.pending = 0  # produced, no delivery report yet
        self.errors: list[str] = []
        self.closed = False  # flushed: the caller's next message starts a new batch

    def sent(self, count: int = 1) -> None:
        self.pending += count

    def settled(self, error: str | None) -> None:
        self.pending -= 1
        if error is not None:
            self.errors.append(error)


def producer_stalled(waiting: int, waiting_since: float, last_delivered: float, now: float, after_s: float) -> bool:
    """Messages wait, and none was delivered for after_s: since the last delivery, or since the
    producer went from idle to busy (or was created), whichever came later. Only the caller can
    tell whether the broker answers meanwhile (then the producer, not the broker, is stuck)."""
    return waiting > 0 and now - max(waiting_since, last_delivered) >= after_s
