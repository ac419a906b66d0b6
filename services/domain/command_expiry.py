"""When a command counts: the expiry that makes an API's 503 a promise.

The API writes a command and waits a bounded time (`SCANLEDGER_COMMAND_TIMEOUT`) for the
broker's ack. If no ack comes, it answers 503 — yet the command may still reach the log
later (a request already on the wire, a broker that comes back). So every command the API
writes carries an expiry, the CloudEvents extension attribute `expiresat` (RFC 3339, UTC,
milliseconds), and the commands topic stamps each record with the broker's append time
(`message.timestamp.type=LogAppendTime`). The one rule, applied alike by the API to the
timestamp in its delivery report and by every consumer of the commands topic to the
record's timestamp:

    a command whose record timestamp is later than its `expiresat` never happened.

The expiry is set a little before the API's own deadline (`ACK_GRACE_S`), so a record the
broker appends after the API gave up is always expired; an ack that arrives in time but
carries a later append time is answered 503 too, consistently with the consumers. What is
left is the case no timeout can close: a record appended before its expiry whose ack is
lost for longer than the grace (the clocks of API hosts and brokers are assumed within the
grace of each other).

Pure: no Kafka, no clock except where a caller passes none.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EXPIRES = "expiresat"  # the CloudEvents extension attribute (lowercase alphanumerics, as the spec asks)
ACK_GRACE_S = 1.0  # the expiry comes this long before the API's deadline (at most a fifth of the timeout)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def expiry_ms(sent_at_ms: int, timeout_s: float) -> int:
    """The expiry of a command sent at sent_at_ms by an API that waits timeout_s for its ack."""
    grace_ms = round(min(ACK_GRACE_S, timeout_s / 5) * 1000)
    return sent_at_ms + round(timeout_s * 1000) - grace_ms


def iso_ms(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ms(value: str) -> int:
    """RFC 3339 to epoch milliseconds, exactly (no float rounding)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def with_expiry(command: dict, timeout_s: float, now_ms: int | None = None) -> dict:
    """The command, stamped with the expiry of a write that waits timeout_s from now."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return {**command, EXPIRES: iso_ms(expiry_ms(now_ms, timeout_s))}


def expires_at_ms(command: dict) -> int | None:
    raw = command.get(EXPIRES)
    return parse_ms(raw) if isinstance(raw, str) and raw else None


def is_expired(command: dict, record_timestamp_ms: int | None) -> bool:
    """Whether a command record must be ignored: its timestamp is after its `expiresat`.

    `command` is the decoded CloudEvent; `record_timestamp_ms` the Kafka record's timestamp in
    epoch milliseconds (LogAppendTime on the commands topic). A record without `expiresat`
    (any event that is not an API command, or a command written before expiries existed) or
    without a timestamp (None or negative: Kafka's "no timestamp") never expires. A record
    appended exactly at its expiry still counts.
    """
    if record_timestamp_ms is None or record_timestamp_ms < 0:
        return False
    try:
        expires = expires_at_ms(command)
    except ValueError:
        return False  # a malformed expiry is the validating consumer's business, not a silent drop
    return expires is not None and record_timestamp_ms > expires
