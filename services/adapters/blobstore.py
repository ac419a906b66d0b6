"""Content-addressed blob stores: uploads, their Arrow tables, unit files, chunk file lists.

A blob's key is the sha256 of its bytes, so putting the same content twice (a retried unit plan)
is harmless and a copy of a blob anywhere is never stale. Two stores satisfy one protocol:
- `LocalBlobStore`: a directory under the data dir (the default), one file per key; writes go
  to a temporary file renamed into place, so a reader never sees half a blob;
- `S3BlobStore` (blobstore_s3.py): a bucket every host reads, selected by
  `SCANLEDGER_BLOB_URL=s3://bucket[/prefix]`, read through a local cache in the data dir.

Every process gets its store from `blob_store(settings)`. Errors: `BlobMissing` (no blob of that
key: a data problem, the unit that needs it fails), `BlobUnavailable` (the store did not answer:
whoever needs the blob tries again later), `BlobSettingError` (the store cannot be used at all with
these settings: one line naming the setting to fix, for a process to exit with at start).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from services.settings import Settings

KEY = re.compile(r"[0-9a-f]{64}")
Bytes = bytes | bytearray | memoryview  # what a blob is put from (a memoryview: an Arrow buffer, not copied)


class BlobMissing(LookupError):
    """No blob of this key in the store."""


class BlobUnavailable(Exception):
    """The store did not answer (endpoint down, timeouts, throttled): try again later, nothing is lost."""


class BlobSettingError(Exception):
    """The store cannot be used with these settings: the message is one line naming the setting to fix."""


class BlobStore(Protocol):
    def put(self, data: Bytes) -> str:
        """Store the bytes (idempotent); their key, the sha256 of the bytes."""

    def get(self, key: str) -> bytes:
        """The blob's bytes (BlobMissing, BlobUnavailable)."""

    def path(self, key: str) -> Path:
        """A local file holding the blob, to memory-map (BlobMissing, BlobUnavailable)."""

    def check(self) -> None:
        """At start: the store can be written and read (BlobSettingError naming the setting to fix)."""


def blob_key(data: Bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked_key(key: str) -> str:
    """A key as the store makes them (a name for a file or an object): BlobMissing for anything else."""
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise BlobMissing(f"no blob {key!r}: not a blob key")
    return key


def sharded(root: Path, key: str) -> Path:
    """Where a key's file lives under a directory: root/ab/abcdef…"""
    return root / key[:2] / key


def write_atomically(target: Path, data: Bytes) -> None:
    """The bytes at `target`, all or nothing: a temporary file beside it, renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalBlobStore:
    """The blob store of one host: a directory (the data dir's `blobs/`)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        target = sharded(self.root, checked_key(key))
        if not target.exists():
            raise BlobMissing(f"no blob {key} in {self.root}")
        return target

    def put(self, data: Bytes) -> str:
        key = blob_key(data)
        target = sharded(self.root, key)
        if not target.exists():
            write_atomically(target, data)
        return key

    def get(self, key: str) -> bytes:
        try:
            return sharded(self.root, checked_key(key)).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"no blob {key} in {self.root}") from None

    def check(self) -> None:
        """Nothing to check: the data dir is the process's own."""


def blob_store(settings: Settings) -> BlobStore:
    """The process's blob store, as its settings say (SCANLEDGER_BLOB_URL; unset: the data dir's)."""
    if not settings.blob_url:
        return LocalBlobStore(settings.blob_dir)
    from services.adapters.blobstore_s3 import S3BlobStore  # boto3 only for the processes that use it

    return S3BlobStore.from_settings(settings)


def check_blob_store(settings: Settings) -> None:
    """A process's start: BlobSettingError (one line naming the setting to fix) when its blob store
    cannot be written and read with these settings."""
    blob_store(settings).check()
