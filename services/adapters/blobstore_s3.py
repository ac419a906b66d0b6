"""The blob store on S3 (`SCANLEDGER_BLOB_URL=s3://bucket[/prefix]`): a bucket every host reads.

Objects are `<prefix>/<sha256>`. Endpoint, region and keys come from the AWS chain of the process
(AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
AWS_PROFILE and ~/.aws/config, an instance role); timeouts and attempts are the S3 settings every
S3 client of the project has (services/adapters/s3_client.py).

Reads go through a cache in the data dir (`blob-cache/`), one file per key: a key is the hash of
its bytes, so a cached copy is never stale, and a unit read again on the same host (a re-offer, a
resume, a rerun, a second evaluator) costs no download; `path(key)` is a local file to memory-map.
A download is hashed as it is written and renamed into place only when the hash is its key. A put
writes the object unless the store already holds it (HEAD first: the bytes of a large upload go
once), then keeps the bytes in the cache too: the planner's units are read by the evaluators of
its own host without a download. Nothing is ever evicted (as in the local store); the cache can be
deleted whenever the process is stopped.

Errors: no such object is `BlobMissing`; anything else at run time (no answer, a timeout, a 5xx,
even refused keys) is `BlobUnavailable`, which whoever needs the blob retries: an outage of the
store delays scans, it never fails them. At start, `check()` writes and reads one blob (the empty
one) and turns what goes wrong into one line naming the setting to fix (`BlobSettingError`).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from urllib3.exceptions import HTTPError as Urllib3Error

from services.adapters import s3_client
from services.adapters.blobstore import (
    BlobMissing,
    BlobSettingError,
    BlobUnavailable,
    Bytes,
    blob_key,
    checked_key,
    sharded,
    write_atomically,
)
from services.adapters.s3_client import MISSING_CODES, PERMISSION_CODES, describe, error_code
from services.settings import Settings

SETTING = "SCANLEDGER_BLOB_URL"
KEYS = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
READ_BYTES = 1 << 20
AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix: "" or ending in "/") of s3://bucket[/prefix]; BlobSettingError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment or "@" in parts.netloc:
        raise BlobSettingError(f'{SETTING}="{url}" is not an S3 URL: give s3://bucket or s3://bucket/prefix'
                               " (or leave it unset for the blob store in the data dir)")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3BlobStore:
    def __init__(self, url: str, cache: Path, connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0,
                 max_attempts: int = 3, endpoint_url: str | None = None, keys: dict[str, str] | None = None):
        """`endpoint_url` and `keys` (boto3's aws_access_key_id, aws_secret_access_key): the AWS chain's
        unless given (a process's store always takes the chain's: from_settings)."""
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        self.cache = Path(cache)
        timeouts = (connect_timeout_s, read_timeout_s, max_attempts)
        where = {"endpoint_url": endpoint_url, **(keys or {})}
        self.client = s3_client.client(config=s3_client.config(*timeouts), **where)
        self.endpoint = self.client.meta.endpoint_url
        host = urlsplit(self.endpoint).hostname or ""
        if not host.endswith(AWS_HOSTS):  # an S3-compatible server (AWS_ENDPOINT_URL): buckets in the path
            self.client = s3_client.client(config=s3_client.config(*timeouts, path_style=True), **where)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        return cls(settings.blob_url, settings.blob_cache_dir, settings.s3_connect_timeout_s,
                   settings.s3_read_timeout_s, settings.s3_max_attempts)

    @property
    def where(self) -> str:
        return f"{self.url} at {self.endpoint}"

    def _object(self, key: str) -> str:
        return self.prefix + key

    # -- the protocol ----------------------------------------------------------------------------

    def put(self, data: Bytes) -> str:
        key = blob_key(data)
        cached = sharded(self.cache, key)
        if not cached.exists():  # a cached blob is in the bucket: it was read from it or written to it
            if not self._exists(key):
                try:
                    self.client.put_object(Bucket=self.bucket, Key=self._object(key), Body=bytes(data))
                except (BotoCoreError, ClientError) as exc:
                    raise BlobUnavailable(f"cannot write blob {key} to {self.where}: {describe(exc)}") from None
            write_atomically(cached, data)
        return key

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def path(self, key: str) -> Path:
        cached = sharded(self.cache, checked_key(key))
        if not cached.exists():
            self._download(key, cached)
        return cached

    def check(self) -> None:
        """Write and read the empty blob; BlobSettingError with one line naming what to fix."""
        key = blob_key(b"")
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._object(key), Body=b"")
            self.client.get_object(Bucket=self.bucket, Key=self._object(key))["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise BlobSettingError(self._setting_problem(exc)) from None

    # -- S3 --------------------------------------------------------------------------------------

    def _exists(self, key: str) -> bool:
        """Whether the bucket holds the object. Not knowing (403: the keys may not list the bucket) is no."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(key))
            return True
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES | PERMISSION_CODES:
                return False
            raise BlobUnavailable(f"cannot look up blob {key} in {self.where}: {describe(exc)}") from None
        except BotoCoreError as exc:
            raise BlobUnavailable(f"cannot look up blob {key} in {self.where}: {describe(exc)}") from None

    def _download(self, key: str, target: Path) -> None:
        """The object into the cache, streamed and hashed on the way: renamed into place only whole and right."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._object(key))["Body"]
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise BlobMissing(f"no blob {key} in {self.url}") from None
            raise BlobUnavailable(f"cannot read blob {key} from {self.where}: {describe(exc)}") from None
        except BotoCoreError as exc:
            raise BlobUnavailable(f"cannot read blob {key} from {self.where}: {describe(exc)}") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = body.read(READ_BYTES)
                    except (BotoCoreError, Urllib3Error, OSError) as exc:  # the connection dropped mid-body
                        raise BlobUnavailable(f"cannot read blob {key} from {self.where}: {describe(exc)}") from None
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != key:
                raise BlobUnavailable(f"blob {key} from {self.where} came with other bytes (sha256 "
                                      f"{digest.hexdigest()}): read again")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            body.close()

    def _setting_problem(self, exc: Exception) -> str:
        """One line: what is wrong with the blob store's settings, naming the setting to fix."""
        what = s3_client.reason(exc, client_error="refused", other="unreachable")
        if what == "credentials" and isinstance(exc, NoCredentialsError):
            return f"{SETTING}={self.url}: no S3 credentials found for it: set {KEYS}"
        if what == "credentials":
            return f"{SETTING}={self.url}: {self.endpoint} refused the S3 keys ({describe(exc)}): fix {KEYS}"
        if what == "permission":
            return (f"{SETTING}={self.url}: the S3 keys may not write and read objects there ({describe(exc)}):"
                    f" grant them s3:PutObject and s3:GetObject on it, or fix {KEYS}")
        if what == "missing":
            return (f"{SETTING}={self.url}: {self.endpoint} has no bucket \"{self.bucket}\" ({describe(exc)}):"
                    f" create it or fix {SETTING} (or AWS_ENDPOINT_URL)")
        if what == "unreachable":
            return (f"{SETTING}={self.url}: cannot reach the S3 endpoint {self.endpoint} ({describe(exc)}):"
                    " fix AWS_ENDPOINT_URL (or start the server)")
        return f"{SETTING}={self.url}: {self.endpoint} refused the blob store ({describe(exc)}): fix {SETTING}"
