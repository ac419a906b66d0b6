"""Decoding a consumed record: the one place that decides what a consumer cannot use.

`decode_checked` decodes a CloudEvents record and validates what every consumer relies on,
raising `PoisonRecord` otherwise (services.adapters.deadletter sends such a record on).

Validation cost: the violations topic carries one event per violation (millions per large
scan), so `violation.detected` gets a cheap check of the keys and types the read models
need (about a microsecond); every other type with a contract is validated in full with its
pydantic model (scan lifecycle events, commands and work units are few). The read models go
faster still with `decode_violation`: a violation in exactly the shape that check passes,
decoded straight into a struct, no dict; anything else it leaves to `decode_checked`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
import orjson
from pydantic import ValidationError

from services.domain import contracts as c
from services.domain.envelope import LEGACY_TYPE_HEADER, TYPE_HEADER
from services.domain.vocabulary import SEVERITIES

_loads, _JSONDecodeError = orjson.loads, orjson.JSONDecodeError


class PoisonRecord(Exception):
    """A record no consumer can use: not JSON, not our envelope, or not its type's contract."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_SEVERITIES = frozenset(SEVERITIES)
# every key the read model reads from a violation (the model's required fields)
_VIOLATION_KEYS = frozenset(name for name, f in c.ViolationDetected.model_fields.items() if f.is_required())
# and those it stores in NOT NULL columns or keys by: strings, always
_VIOLATION_STRINGS = ("violation_id", "scan_id", "rule_id", "record_key", "signature")


def _check_violation(data: dict) -> None:
    """The cheap check of the high-volume type: keys present, keys and non-null columns strings.
    It allocates nothing (no keys view, no generator): the projector runs it per violation,
    and every allocation brings the next garbage-collector pass closer."""
    try:
        if (type(data["violation_id"]) is not str or type(data["scan_id"]) is not str
                or type(data["rule_id"]) is not str or type(data["record_key"]) is not str
                or type(data["signature"]) is not str):
            bad = next(name for name in _VIOLATION_STRINGS if type(data[name]) is not str)
            raise PoisonRecord(f"data.{bad} is not a string")
        if type(data["severity"]) is not str or data["severity"] not in _SEVERITIES:  # a list is unhashable
            raise PoisonRecord(f"data.severity {data['severity']!r} is not one of {sorted(_SEVERITIES)}")
        # present (one statement each: a tuple of them would be an allocation)
        data["unit_id"]
        data["rule_name"]
        data["rule_type"]
        data["account"]
        data["record_index"]
        data["value"]
        data["window"]
    except KeyError:
        raise PoisonRecord(f"data lacks {', '.join(sorted(_VIOLATION_KEYS - data.keys()))}") from None


def _full(model) -> Callable[[dict], None]:
    validate = model.model_validate

    def check(data: dict) -> None:
        try:
            validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            detail = "; ".join(f"data.{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in errors[:3])
            raise PoisonRecord(f"invalid {model.__name__}: {detail}"
                               + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")) from None
    return check


_CHECKS: dict[str, Callable[[dict], None]] = {type_: _full(model) for type_, model in c.MODELS.items()}
_CHECKS[c.VIOLATION_DETECTED] = _check_violation


def _header(headers, name: str):
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else value
    return None


def _envelope_error(event) -> PoisonRecord:
    """Why an event failed the fast envelope check (the slow path names the field)."""
    if type(event) is not dict:
        return PoisonRecord(f"not a JSON object but {type(event).__name__}")
    for name in ("type", "id", "subject"):
        field = event.get(name)
        if type(field) is not str or not field:
            return PoisonRecord(f"envelope: {name} is missing or not a non-empty string")
    return PoisonRecord("envelope: data is missing or not an object")


_TYPE_BYTES = {type_: type_.encode() for type_ in c.MODELS}


def decode_checked(value: bytes | None, headers=None) -> dict[str, Any]:
    """The event of a record, or PoisonRecord(reason).

    Checks: JSON object; `type`, `id`, `subject` non-empty strings; `data` an object; the
    type header (`scanledger-type`, or `ce_type` on records written before; when headers are
    given and have it) equal to the body's type, since consumers filter on it; and for a type
    with a contract, a string `time` and `data` valid for it. A type without a contract passes
    with the envelope checks alone: consumers skip what they do not know. Written for speed: the
    projector calls it once per event.
    """
    if value is None:
        raise PoisonRecord("no value (tombstone)")
    try:
        event = _loads(value)
    except _JSONDecodeError as exc:
        raise PoisonRecord(f"not JSON: {exc}") from None
    if type(event) is not dict:
        raise _envelope_error(event)
    try:  # one name at a time: a 4-tuple unpacking would allocate a tuple per event
        type_ = event["type"]
        id_ = event["id"]
        subject = event["subject"]
        data = event["data"]
    except KeyError:
        raise _envelope_error(event) from None
    if not (type(type_) is str and type(id_) is str and type(subject) is str and type(data) is dict
            and type_ and id_ and subject):
        raise _envelope_error(event)
    if headers:
        if type(headers) is list:
            for key, declared in headers:
                if key in (TYPE_HEADER, LEGACY_TYPE_HEADER):
                    if declared != (_TYPE_BYTES.get(type_) or type_.encode()) and declared != type_:
                        raise PoisonRecord(f"envelope: {key} header {_header(headers, key)!r}"
                                           f" is not the body's type {type_!r}")
                    break
        else:
            for key in (TYPE_HEADER, LEGACY_TYPE_HEADER):
                declared = _header(headers, key)
                if declared is not None and declared != type_:
                    raise PoisonRecord(f"envelope: {key} header {declared!r} is not the body's type {type_!r}")
    check = _CHECKS.get(type_)
    if check is not None:
        if type(event.get("time")) is not str:
            raise PoisonRecord("envelope: time is missing or not a string")
        check(data)
    return event


# decode_violation's shape: what _check_violation passes, as msgspec types. The fields it only
# requires to be present are Any; the event's other keys are ignored, as the dict path ignores them.
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_NULL = msgspec.Raw(b"null")


class ViolationData(msgspec.Struct):
    violation_id: str
    scan_id: str
    unit_id: Any
    rule_id: str
    rule_name: Any
    rule_type: Any
    severity: Literal[SEVERITIES]  # type: ignore[valid-type]
    account: Any
    record_index: Any
    record_key: str
    value: Any
    window: Any
    signature: str
    # kept as the JSON sent, not parsed: the read model stores them as JSON text (decode_violation)
    record: msgspec.Raw = _NULL
    container_id: Any = None
    observed: msgspec.Raw = _NULL


class Violation(msgspec.Struct):
    type: Literal[c.VIOLATION_DETECTED]  # type: ignore[valid-type]
    id: _NonEmpty
    subject: _NonEmpty
    time: str
    data: ViolationData


_violation = msgspec.json.Decoder(Violation).decode


def decode_violation(value: bytes | None) -> tuple[Violation, str | None, str | None] | None:
    """A violation.detected event decoded straight into a struct with its record's and observed's JSON
    text (None when null or empty), or None for any record not in exactly that shape: another type,
    a bad one, one whose record or observed is not an object. Those go to decode_checked, which
    accepts the rest of what it accepts and names what it refuses; what this accepts,
    decode_checked accepts too. The two objects are not parsed, only checked to be objects and
    UTF-8, and their text is the producer's (a parse and a re-encode cost a quarter of the decode:
    about 2.5 µs against 3.3); decode_checked's path re-encodes them, to the same text for what
    orjson encoded, the same JSON for any other producer's."""
    if value is None:
        return None
    try:
        v = _violation(value)
        return v, _object_text(v.data.record), _object_text(v.data.observed)
    except (msgspec.DecodeError, ValueError):  # ValidationError is a DecodeError; UnicodeDecodeError a ValueError
        return None


def _object_text(raw: msgspec.Raw) -> str | None:
    """A JSON object's text (valid JSON: msgspec parsed past it), None for null or an empty object;
    ValueError for any other value or bytes that are not UTF-8."""
    if raw is _NULL:  # absent (the default): observed, for every violation but a monitor's
        return None
    text = str(raw, "utf-8")  # a msgspec.Raw starts at its value's first character and ends at its last
    if text[0] == "{":
        # a key at once is how orjson writes any non-empty object: no copy of the text to look for spaces
        return text if text[1] == '"' or not (len(text) == 2 or text[1:-1].isspace()) else None
    if text == "null":
        return None
    raise ValueError("not an object")
