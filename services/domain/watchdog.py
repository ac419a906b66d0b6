"""Noticing work that stopped moving: pure bookkeeping, the clocks are passed in.

Two guards, so that an unknown bug in the stream processor still cannot leave a scan stuck:
- `StallWatch`: a worker whose assigned partitions have lag while it has handled nothing and
  has nothing in flight for `after_s` is stalled; it exits and its supervisor restarts it.
- `RecoveryWatch`: a worker whose table recovery has read no changelog record for `after_s` is
  stuck in the stream processor's recovery (no unit can move meanwhile, and re-offers cannot run):
  it seeks the changelog partitions it still needs again, once; still nothing after
  RECOVERY_WINDOWS × `after_s`, it exits too, and a fresh worker recovers again.
- `Silence`: the coordinator re-offers a unit that has shown no sign of life (sent, progress,
  result) for `after_s`. Unit event ids are deterministic, so a duplicate run is harmless.
  A unit whose work partition still has records left, while the work topic's commit points
  move, is waiting behind other work (`WorkMotion`), not silent: a backlog is never
  re-offered (that would add to it) nor failed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

RECOVERY_WINDOWS = 2  # a recovery is stalled after this many stall windows without a changelog record
DRAINED_S = 5.0  # drained this long (seen on two looks of the worker's 5-s watch), it lost its records


@dataclass
class RecoveryWatch:
    after_s: float
    _sought_for: float | None = None  # the quiet spell a seek was already made in (when it began)
    _drained_at: float | None = None  # when this spell was first seen drained

    def observe(self, now: float, started_at: float | None, last_record_at: float | None,
                drained: bool = False) -> tuple[str, str] | None:
        """("seek", why) once a recovery in progress (`started_at`) has read no changelog record for
        `after_s` since it started or since its last record, or sooner, once it was seen `drained` for
        DRAINED_S (every record it still needs was fetched and none waits to be delivered: they were
        dropped on the way, as Faust's getmany did after a SIGKILL until streams/faust_fixes.py fault 4
        fetched them again: this stays the second line of defence); ("exit", why) when, sought again, it read
        nothing for RECOVERY_WINDOWS × `after_s`; None while it reads, or is not recovering."""
        if started_at is None:
            self._drained_at = None
            return None
        since = last_record_at if last_record_at is not None else started_at
        quiet = now - since
        if not drained or (self._drained_at is not None and self._drained_at < since):
            self._drained_at = now if drained else None
        elif self._drained_at is None:
            self._drained_at = now
        why = f"table recovery read no changelog record for {quiet:.0f} s"
        if self._sought_for != since:  # the spell's first look past the window: seek before giving up
            if quiet > self.after_s or (self._drained_at is not None and now - self._drained_at >= DRAINED_S):
                self._sought_for = since
                return "seek", why + (" with every record it needs fetched" if drained else "")
            return None
        return ("exit", why) if quiet > RECOVERY_WINDOWS * self.after_s else None


@dataclass
class StallWatch:
    after_s: float
    _since: float | None = None
    _lag: dict = field(default_factory=dict)

    def observe(self, now: float, lag: dict, busy: bool, last_activity: float) -> str | None:
        """`lag`: partition -> (committed, end) for assigned partitions with records left.

        Returns why the worker is stalled, or None. A stall needs lag whose commit points
        have not moved, with nothing in flight and nothing handled, for the whole window.
        """
        committed = {tp: c for tp, (c, _end) in lag.items()}
        if busy or not lag:
            self._since, self._lag = None, {}
            return None
        if committed != self._lag or self._since is None:
            self._since, self._lag = now, committed
            return None
        quiet_for = min(now - self._since, now - last_activity)
        if quiet_for < self.after_s:
            return None
        behind = sum(end - c for c, end in lag.values())
        parts = ", ".join(f"{tp} at {c} of {end}" for tp, (c, end) in sorted(lag.items(), key=str))
        return f"{behind} records not consumed for {quiet_for:.0f}s with nothing in flight: {parts}"


@dataclass
class Silence:
    after_s: float
    _last: dict = field(default_factory=dict)

    def touch(self, key: str, now: float) -> None:
        self._last[key] = now

    def due(self, keys: list[str], now: float) -> list[str]:
        """The keys silent for `after_s`; each is touched, so it is due again only after another window.

        A key seen for the first time starts its window now (e.g. after a restart).
        """
        out = []
        for key in keys:
            last = self._last.setdefault(key, now)
            if now - last >= self.after_s:
                out.append(key)
                self._last[key] = now
        return out

    def forget(self, keys) -> None:
        for key in keys:
            self._last.pop(key, None)


@dataclass
class WorkMotion:
    """Whether the work topic is being consumed. A unit is queued while its partition has
    records left and some commit point of the topic moved within `after_s`: the evaluators
    take partitions in turns (a fetched batch at a time), so one partition may wait minutes
    behind the others while all is well. A unit in a drained partition that never reported
    was lost; one while nothing moves is stuck: both are offered again."""
    after_s: float
    _commits: dict = field(default_factory=dict)  # partition -> committed offset, for those with lag
    _moved: float | None = None  # when a commit point last moved (or a partition drained)

    def observe(self, now: float, lag: dict[int, tuple[int, int]]) -> None:
        """`lag`: work partition -> (committed, end) for the partitions with records left."""
        commits = {partition: committed for partition, (committed, _end) in lag.items()}
        if commits != self._commits:
            self._moved = now
        self._commits = commits

    def queued(self, partition: int, now: float) -> bool:
        return partition in self._commits and self._moved is not None and now - self._moved < self.after_s


@dataclass
class Reoffers:
    """Which pending units of running scans to offer again, and which to give up on.

    A unit silent for `after_s` is offered again, unless it is `waiting` (its work partition
    is still being consumed: it is queued behind other work). One offered more than
    `max_offers` times is failed, but only while its whole scan is silent: a unit waiting
    behind others of a busy scan is offered again, never failed.
    """
    after_s: float
    max_offers: int = 3
    _units: Silence | None = None
    _scans: dict = field(default_factory=dict)
    _offers: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._units = Silence(self.after_s)

    def seen(self, scan_id: str, unit_id: str, now: float) -> None:
        """Work sent, or progress: a sign of life."""
        self._scans[scan_id] = now
        self._units.touch(unit_id, now)

    def reported(self, scan_id: str, unit_id: str, now: float) -> None:
        self._scans[scan_id] = now
        self._units.forget([unit_id])
        self._offers.pop(unit_id, None)

    def due(self, running: list[dict], now: float,
            waiting: Callable[[str], bool] = lambda _unit_id: False) -> list[tuple[str, dict, str]]:
        """(action, scan state, unit id) with action "offer" or "fail", for the running scans given."""
        out = []
        for state in running:
            scan_id = state["scan_id"]
            pending = [uid for uid, u in state["units"].items() if u["status"] == "pending"]
            scan_silent = now - self._scans.setdefault(scan_id, now) >= self.after_s
            for unit_id in self._units.due(pending, now):  # its window starts again either way
                if waiting(unit_id):
                    continue
                self._offers[unit_id] = self._offers.get(unit_id, 0) + 1
                give_up = self._offers[unit_id] > self.max_offers and scan_silent
                out.append(("fail" if give_up else "offer", state, unit_id))
        live = {s["scan_id"] for s in running}
        for scan_id in [s for s in self._scans if s not in live]:  # finished or moved to another worker
            del self._scans[scan_id]
        return out
