"""What every connector is: the interface, its two errors, and what a listing finds."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

from services.adapters.readers import Dialect, InputError, detect_format, read_with_dialect


class ConnectorError(Exception):
    """The source as a whole: invalid when registered (400), or unusable when read (409)."""

    def __init__(self, message: str, status: int = 400, reason: str = "invalid"):
        super().__init__(message)
        self.status, self.reason = status, reason


class ResourceError(Exception):
    """One resource cannot be read; `reason` says why (missing, permission, too_large, unreadable, unavailable)."""

    def __init__(self, message: str, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Resource:
    """What a listing finds: enough to filter, split into chunks and tell a change (incremental scans)."""
    name: str
    size: int | None
    mtime: str | None  # ISO-8601 UTC
    etag: str | None = None
    kind: str = "file"  # "file" (a file or an object) or "table"

    @property
    def version(self) -> str:
        """Changes whenever the content may have: the ETag, else size and mtime."""
        return self.etag or f"{self.size}:{self.mtime}"


def selected(name: str, prefixes: Iterable[str] = (), extensions: Iterable[str] | None = None) -> bool:
    """A scan's filters: any of the prefixes (none: all), any of the extensions (None: all; case-insensitive,
    "csv" or ".csv", a compressed "csv.gz" matches "gz" and "csv.gz")."""
    prefixes = tuple(prefixes or ())
    if prefixes and not name.startswith(prefixes):
        return False
    if extensions is None:
        return True
    lower = name.lower()
    return any(lower.endswith("." + ext.lower().lstrip(".")) for ext in extensions)


class Connector:
    """The interface every type implements; `read_bytes` and `read_table` are built on `open`."""
    type: str

    def list_resources(self, prefixes: Iterable[str] = (), extensions: Iterable[str] | None = None,
                       ) -> Iterator[Resource]:
        raise NotImplementedError

    def open(self, name: str) -> BinaryIO:
        """A stream of the resource's bytes; the caller closes it."""
        raise NotImplementedError

    def read_bytes(self, name: str, max_bytes: int | None = None) -> bytes:
        """The whole resource; over max_bytes is a ResourceError (too_large), not an exhausted worker."""
        stream = self.open(name)
        try:
            data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
        except OSError as exc:
            raise ResourceError(f'cannot read "{name}": {exc.strerror or exc}', "unavailable") from None
        finally:
            stream.close()
        if max_bytes is not None and len(data) > max_bytes:
            raise ResourceError(f'"{name}" is larger than {max_bytes} bytes', "too_large")
        return data

    def read_table(self, name: str, max_records: int, dialect: dict | None = None) -> pa.Table:
        """The resource as a table (csv, json, jsonl, parquet files; a sqlite table). `dialect`: how a CSV
        is written, as its datastore was registered (the fields not given are sniffed)."""
        data = self.read_bytes(name)
        try:
            return read_with_dialect(data, detect_format(name, None), max_records,
                                     dialect=Dialect(**dialect) if dialect else None)[0]
        except InputError as exc:
            raise ResourceError(f'cannot read "{name}": {exc.message}') from None

    def probe(self, sample: str | None = None) -> None:
        """Can this process reach the source at all? ConnectorError (409) with the reason when it cannot:
        the directory or database is not where the path says, the keys are refused, the endpoint does
        not answer. `sample`: a resource it should hold (an S3 worker may be allowed to read objects but
        not to list them). A resource of its own that is missing or locked is not this; its read says so."""

    def close(self) -> None:
        pass
