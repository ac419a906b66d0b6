"""The CloudEvents 1.0 structured-mode envelope every message on our topics uses.

Events are plain dicts serialized with orjson: no Faust record metadata, so any consumer in
any language reads clean JSON. Every record says so in its `content-type` header
(`application/cloudevents+json; charset=UTF-8`, the Kafka protocol binding's structured mode), so a
CloudEvents SDK reads it as it is. The type also travels in a `scanledger-type` header so a consumer
can skip what it does not want without parsing the body. Not `ce_type`, which records written before
carry: the binding reserves `ce_` headers for binary mode, and the SDK's `from_kafka_event` takes any
`ce_` header as binary mode and reads the whole envelope as the data.
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

SPECVERSION = "1.0"
# Namespace for deterministic ids: the same fact always gets the same id.
ID_NAMESPACE = uuid.UUID("7b0f5a0e-3c2d-4d0e-9a55-5ca41ed6e000")
TYPE_HEADER = "scanledger-type"
LEGACY_TYPE_HEADER = "ce_type"  # what records written before carried; read still, never written
CONTENT_TYPE_HEADER = "content-type"
CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
_CONTENT_TYPE_BYTES = CONTENT_TYPE.encode()


_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def deterministic_id(*parts: object) -> str:
    """uuid5(ID_NAMESPACE, "a|b|…"), computed directly: the uuid module's objects cost more
    than the hash, and a large scan makes one id per violation."""
    return _uuid5_text(hashlib.sha1(_NAMESPACE_BYTES + "|".join(map(str, parts)).encode()).digest())


def prefix_hash(*prefix: object) -> hashlib._Hash:
    """The SHA-1 state after "<namespace>a|b|…|": what every id of a shared prefix hashes first."""
    return hashlib.sha1(_NAMESPACE_BYTES + ("|".join(map(str, prefix)) + "|").encode())


def deterministic_ids(*prefix: object) -> Callable[[object], str]:
    """deterministic_id(*prefix, last) for many a `last`: the shared prefix is hashed once (a unit's
    violations of one rule differ only in their record's key)."""
    head = prefix_hash(*prefix)

    def id_of(last: object) -> str:
        h = head.copy()
        h.update(str(last).encode())
        return _uuid5_text(h.digest())
    return id_of


def clustered_ids(*prefix: object) -> Callable[[object], str]:
    """Deterministic ids for many a `last` that sort together: a UUIDv8 (RFC 9562) whose first 6 bytes
    are the prefix's hash and whose other 10 (74 bits once the version and variant are set) are the
    hash of the prefix and `last`, as deterministic_ids hashes them.

    Why: a read model keys each violation by its id, and a uuid5 lands anywhere in that index, so a
    batch of a few thousand violations dirties a few thousand of its pages, each written to the
    database's log at every commit (on SQLite the projector spent more in COMMIT and in those inserts
    than in everything else: 14 µs a violation against 6 with these ids). A unit's violations of one
    rule share a prefix, so their ids fill one stretch of the index. Two ids of one prefix collide
    with odds of about n² / 2^75 (1M violations of one rule in one unit: 3·10^-11)."""
    head = prefix_hash(*prefix)
    stretch = head.hexdigest()[:12]

    def id_of(last: object) -> str:
        h = head.copy()
        h.update(str(last).encode())
        return _uuid_text(stretch + h.hexdigest()[:20], "8")
    return id_of


def _uuid5_text(sha1: bytes) -> str:
    return _uuid_text(sha1.hex(), "5")


def _uuid_text(h: str, version: str) -> str:
    """A UUID's text from 32 hex digits (or more: the rest is dropped), the version nibble and the RFC 4122
    variant bits written over two of them (no bytearray, no int per id: a large scan makes 100k)."""
    return f"{h[:8]}-{h[8:12]}-{version}{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


# the hex digit of a byte's high nibble with its two top bits set to 10 (the RFC 4122 variant)
_VARIANT = {d: format((int(d, 16) & 0x3) | 0x8, "x") for d in "0123456789abcdef"}


def new_id() -> str:
    """A random id, for what is named once (a scan, a policy, a command); what may be sent again
    gets a deterministic_id instead."""
    return str(uuid.uuid4())


def utcnow() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime | float) -> str:
    """ISO-8601 UTC to the millisecond, of a datetime or a POSIX timestamp (a file's mtime)."""
    when = moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    type_: str,
    subject: str,
    data: dict[str, Any],
    *,
    id: str,
    source: str,
    workspace_id: str,
    causation_id: str | None = None,
    correlation_id: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    return {
        "specversion": SPECVERSION,
        "id": id,
        "source": source,
        "type": type_,
        "subject": subject,
        "time": time or utcnow(),
        "datacontenttype": "application/json",
        "workspaceid": workspace_id,
        "causationid": causation_id or id,
        "correlationid": correlation_id or subject,
        "data": data,
    }


# Who caused an event the API wrote (CloudEvents extension attributes): the token's id and role, never
# the token; for a BYOC worker's report also the worker's own id. Events the system decides carry
# none: their `source` says which part of it (coordinator, evaluator).
ACTOR_ID, ACTOR_ROLE, WORKER_ID = "actorid", "actorrole", "workerid"


def with_actor(event: dict[str, Any], token_id: str, role: str, worker_id: str | None = None) -> dict[str, Any]:
    event[ACTOR_ID], event[ACTOR_ROLE] = token_id, role
    if worker_id is not None:
        event[WORKER_ID] = worker_id
    return event


def follow(cause: dict[str, Any], type_: str, data: dict[str, Any], *, id: str, source: str,
           time: str | None = None) -> dict[str, Any]:
    """An event caused by another message: same subject, workspace and correlation."""
    return make_event(type_, cause["subject"], data, id=id, source=source,
                      workspace_id=cause["workspaceid"], causation_id=cause["id"],
                      correlation_id=cause.get("correlationid"), time=time)


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def follower_parts(cause: dict[str, Any], type_: str, head: dict[str, Any], *, source: str, time: str,
                   id_key: str) -> tuple[bytes, bytes, bytes]:
    """(before, between, after): for events that differ only in their id and `own` fields (one rule's
    violations in a unit), encode(follow(cause, type_, {id_key: id, **head, **own}, id=id, source=source,
    time=time)) is before + dumps(id) + between + dumps(id) + after + b"," + dumps(own)[1:] + b"}" (own not
    empty). The envelope and `head` are encoded once, by orjson, so escaped as it escapes."""
    mark = "\x00id\x00"  # stands for the id in the shared bytes; orjson writes it \u0000id\u0000
    while True:
        shared = encode(follow(cause, type_, {id_key: mark, **head}, id=mark, source=source, time=time))
        parts = shared.split(orjson.dumps(mark))
        if len(parts) == 3 and parts[2].endswith(b"}}"):
            return parts[0], parts[1], parts[2][:-2]
        mark += "\x00"  # the mark is in a shared string: a longer one is in none of them, in the end


def decode(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw)


def headers(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    return type_headers(event["type"])


def type_headers(type_: str) -> list[tuple[str, bytes]]:
    """The headers of every record of one event type we write."""
    return [(CONTENT_TYPE_HEADER, _CONTENT_TYPE_BYTES), (TYPE_HEADER, type_.encode())]


def header_type(message_headers) -> str | None:
    """The type a message's headers declare (a list of pairs or a dict), by the header we write or
    the one records written before carry."""
    if not message_headers:
        return None
    items = message_headers.items() if isinstance(message_headers, dict) else message_headers
    for key, value in items:
        if key in (TYPE_HEADER, LEGACY_TYPE_HEADER):
            return value.decode() if isinstance(value, (bytes, bytearray)) else value
    return None
