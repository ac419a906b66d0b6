"""A sensitive-data chunk's report events, wherever the chunk ran: their ids, and the checks on what an
external (BYOC) worker reports before the API writes it to the ledger.

The in-cluster evaluator (services.runners.sensitive) and `scanledger scan-worker` run the same code,
so they report the same events; an external worker's reach the ledger through the API, which keeps
only each event's type and data, checks them against the chunk it leased, and gives them the id
and envelope the in-cluster path would have. So a worker can neither count a finding twice (the id
is a function of the data) nor report on a file, chunk or scan it does not hold.
"""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.domain import contracts as c
from services.domain.envelope import deterministic_id

REPORTED = (c.FINDING_DETECTED, c.FILE_OUTCOME, c.UNIT_PROGRESSED, c.UNIT_COMPLETED)


def finding_key(connector_id: str, name: str, row, column, line, detector: str, start: int) -> str:
    """The same value at the same place is the same finding, whichever run, attempt or worker found it."""
    return deterministic_id("finding", connector_id, name, row, column, line, detector, start)


def event_id(type_: str, data: dict) -> str:
    """A report event's id, a function of its data alone."""
    if type_ == c.FINDING_DETECTED:
        return deterministic_id(type_, data["scan_id"], data["finding_id"])
    if type_ == c.FILE_OUTCOME:
        return deterministic_id(type_, data["scan_id"], data["connector_id"], data["name"])
    if type_ == c.UNIT_PROGRESSED:
        return deterministic_id(type_, data["unit_id"], data.get("attempt", 0), data["rules_done"])
    if type_ == c.UNIT_COMPLETED:
        return deterministic_id(type_, data["unit_id"], data.get("attempt", 0))
    raise ValueError(f"not a chunk report: {type_}")


class BadReport(ValueError):
    def __init__(self, index: int, message: str, path: tuple = ()):
        super().__init__(message)
        self.index, self.path = index, path


class ChunkFiles:
    """The files of a leased chunk, by (connector, name): their place in the enumeration and version."""

    def __init__(self, files: list[dict], start_index: int):
        self.count = len(files)
        self.by_key = {(f["connector_id"], f["name"]): (start_index + i, f["version"]) for i, f in enumerate(files)}


def checked(index: int, raw: Any, work: dict, files: ChunkFiles) -> tuple[str, dict]:
    """(type, data) of one reported event, validated against the leased chunk's work; BadReport if not."""
    if not isinstance(raw, dict) or raw.get("type") not in REPORTED or not isinstance(raw.get("data"), dict):
        raise BadReport(index, f"an event is {{type, data}} with type one of {', '.join(REPORTED)}")
    type_ = raw["type"]
    try:
        # dumped as the evaluator dumps them: findings and outcomes whole, progress and results as set
        data = c.MODELS[type_].model_validate(raw["data"]).model_dump(
            exclude_unset=type_ in (c.UNIT_PROGRESSED, c.UNIT_COMPLETED))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BadReport(index, err["msg"], ("data", *err["loc"])) from None
    for key in ("scan_id", "unit_id"):
        if data[key] != work[key]:
            raise BadReport(index, f"{key} is not the leased chunk's", ("data", key))
    if type_ != c.FINDING_DETECTED and data.get("attempt", 0) != work.get("attempt", 0):
        raise BadReport(index, "attempt is not the leased chunk's", ("data", "attempt"))
    if type_ == c.FILE_OUTCOME:
        place = files.by_key.get((data["connector_id"], data["name"]))
        if place is None:
            raise BadReport(index, "the file is not in the leased chunk", ("data", "name"))
        if (data["index"], data["version"]) != place:
            raise BadReport(index, "index or version is not the enumerated file's", ("data", "index"))
    elif type_ == c.FINDING_DETECTED:
        if (data["connector_id"], data["file"]) not in files.by_key:
            raise BadReport(index, "the file is not in the leased chunk", ("data", "file"))
        key = finding_key(data["connector_id"], data["file"], data.get("row"), data.get("column"), data.get("line"),
                          data["detector"], data["start"])
        if data["finding_id"] != key:
            raise BadReport(index, "finding_id is not the finding's deterministic id", ("data", "finding_id"))
    elif type_ == c.UNIT_COMPLETED:
        counts = data.get("files") or {}
        if sum(counts.get(k, 0) for k in ("scanned", "skipped", "failed")) != files.count \
                or data["rules_done"] != files.count or data["record_count"] != counts.get("scanned", 0):
            raise BadReport(index, "the chunk's result must account for each of its files once", ("data", "files"))
    return type_, data
