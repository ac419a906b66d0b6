"""What every read model's handlers take: one record of the ledger, decoded."""
from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    type: str | None
    event: dict
    timestamp: int | None = None  # the record's Kafka timestamp, ms (LogAppendTime on the commands topic)
    row: tuple | None = None  # a violation's rm_violations row (services.readmodels.violations)


def to_json(value) -> str:
    return orjson.dumps(value).decode()
