"""Is work moving? What /healthz adds to 'is every process up'.

A component is stalled when it has records left to consume and, for the whole stall window,
neither its commit points nor what it writes have moved. The worker's commit points are the
streams group's offsets in Kafka (a worker evaluating a long unit still writes violations and
progress, so it is not stalled); the projector's are the offsets it stores in the database.
"""
from __future__ import annotations

import time

from services.adapters import kafka_admin
from services.adapters.db import connect
from services.domain.watchdog import StallWatch
from services.settings import Settings


class Progress:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.watches = {"worker": StallWatch(settings.stall_s), "projector": StallWatch(settings.stall_s)}

    def stalled(self, measured: tuple | None = None) -> list[dict]:
        """[{component, lag, detail}] for each component that has lag and is not moving (`measured`:
        what lags() just returned, else measured here)."""
        marks, worker_lag, projector_lag = measured or lags(self.settings)
        written = {tp: high for tp, (_low, high) in marks.items() if tp[0] != self.settings.topics.commands}
        now, out = time.monotonic(), []
        for name, lag, moving in (("worker", worker_lag, written), ("projector", projector_lag, {})):
            # what the component writes counts as movement: fold it into the commit points watched
            watched = {**lag, **{("wrote", *tp): (end, end + 1) for tp, end in moving.items()}} if lag else {}
            reason = self.watches[name].observe(now, watched, False, 0.0)
            if reason:
                out.append({"component": name, "lag": sum(end - c for c, end in lag.values()),
                            "partitions": {f"{tp[0]}[{tp[1]}]": end - c for tp, (c, end) in sorted(lag.items())}})
        return out

Lag = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (position, end), partitions with records left


def lags(settings: Settings) -> tuple[dict, Lag, Lag]:
    """The watermarks, the worker's lag (the streams group's commits in Kafka) and the projector's
    (the offsets it stores in the database, the truth it resumes from)."""
    t = settings.topics
    marks = kafka_admin.watermarks(settings, [t.commands, t.scan_events, t.work, t.violations, t.findings])
    worker_in = [tp for tp in marks if tp[0] in (t.commands, t.scan_events, t.work)]
    return (marks, kafka_admin.group_lag(settings, settings.streams_group, worker_in, marks=marks),
            projector_lag(settings, marks))


def lag_totals(settings: Settings, measured: tuple | None = None) -> dict[str, dict[str, int]]:
    """component -> topic -> records left, every topic of its input listed (0 when caught up)."""
    marks, worker, projector = measured or lags(settings)
    t = settings.topics
    inputs = {"worker": (t.commands, t.scan_events, t.work),
              "projector": (t.commands, t.scan_events, t.violations, t.findings)}
    out = {}
    for name, lag in (("worker", worker), ("projector", projector)):
        per_topic = {topic: 0 for topic in inputs[name] if any(tp[0] == topic for tp in marks)}
        for (topic, _p), (position, end) in lag.items():
            per_topic[topic] = per_topic.get(topic, 0) + end - position
        out[name] = per_topic
    return out


def projector_lag(settings: Settings, marks: dict) -> Lag:
    conn = connect(settings.db_url)
    try:
        stored = {(r["topic"], r["partition"]): r["next_offset"]
                  for r in conn.execute("SELECT topic, partition, next_offset FROM projector_offsets")}
    finally:
        conn.close()
    projected = {t for t, _ in stored} | {settings.topics.scan_events, settings.topics.violations,
                                          settings.topics.findings}
    lag = {}
    for tp, (low, high) in marks.items():
        position = max(stored.get(tp, 0), low)
        if tp[0] in projected and high > position:
            lag[tp] = (position, high)
    return lag
