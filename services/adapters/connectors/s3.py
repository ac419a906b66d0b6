"""The s3 connector: objects of a bucket under a prefix, over boto3 (any S3-compatible endpoint).

Listing pages through ListObjectsV2 (never the whole bucket in one answer) and filters by key
prefix on the server; reading streams the object's body. Every call has a connect and a read
timeout and a bounded number of retries, and every failure becomes a ConnectorError (listing)
or a ResourceError (one object) with a reason and a message that names the endpoint, the
bucket or the key, never a secret.

Credentials are references, resolved when a connector is opened (API process or worker):
- `{"source": "env", "access_key_id_env": NAME, "secret_access_key_env": NAME[, "session_token_env": NAME]}`:
  variables whose names start with SCANLEDGER_SECRET_ (per-workspace roots:
  SCANLEDGER_SECRET_<WORKSPACE>__, the workspace id upper-cased, `-` as `_`), so no one can have
  another variable of the process (the admin token…) sent to an endpoint of their choosing;
- `{"source": "file", "path": P}`: a JSON file `{"access_key_id", "secret_access_key"[, "session_token"]}`
  under `SCANLEDGER_SECRETS_DIR` (per-workspace roots: `<dir>/<workspace_id>/`), resolved with
  its symlinks like a datastore path;
- `{"source": "anonymous"}`: unsigned requests (a public bucket).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.adapters import s3_client
from services.adapters.connectors.base import Connector, ConnectorError, Resource, ResourceError, selected
from services.adapters.connectors.confinement import env_prefix, env_value, secrets_root
from services.adapters.s3_client import CREDENTIAL_CODES, PERMISSION_CODES
from services.adapters.s3_client import describe as _describe
from services.adapters.s3_client import error_code as _code
from services.domain.envelope import iso
from services.settings import Settings


def _keys_from_file(settings: Settings, workspace_id: str, path: str, status: int) -> dict[str, str]:
    root = secrets_root(settings, workspace_id)
    if root is None:
        raise ConnectorError("secret files are not enabled: SCANLEDGER_SECRETS_DIR is not set", status, "credentials")
    try:
        file = (root / path).resolve()
    except (OSError, ValueError):
        raise ConnectorError(f'secret file "{path}" is not a valid path', status, "credentials") from None
    if root not in file.parents or not file.is_file():
        raise ConnectorError(f'secret file "{path}" is not a file in the secrets dir', status, "credentials")
    try:
        content = json.loads(file.read_bytes())
    except (OSError, ValueError):
        raise ConnectorError(f'secret file "{path}" cannot be read as JSON', status, "credentials") from None
    if not isinstance(content, dict) or not all(isinstance(content.get(k), str) and content[k]
                                                for k in ("access_key_id", "secret_access_key")):
        raise ConnectorError(f'secret file "{path}" needs "access_key_id" and "secret_access_key" strings',
                             status, "credentials")
    keys = {"aws_access_key_id": content["access_key_id"], "aws_secret_access_key": content["secret_access_key"]}
    if isinstance(content.get("session_token"), str):
        keys["aws_session_token"] = content["session_token"]
    return keys


def _keys_from_env(settings: Settings, workspace_id: str, credentials: dict, status: int) -> dict[str, str]:
    prefix = env_prefix(settings, workspace_id)
    keys = {}
    for field, arg in (("access_key_id_env", "aws_access_key_id"), ("secret_access_key_env", "aws_secret_access_key"),
                       ("session_token_env", "aws_session_token")):
        name = credentials.get(field)
        if name is None:
            continue
        if not name.startswith(prefix) or name == prefix:
            raise ConnectorError(f'{field}: environment variable "{name}" is not one a connector may name'
                                 f' (they start with {prefix})', status, "credentials")
        value = env_value(name)
        if value is None:
            raise ConnectorError(f'{field}: environment variable "{name}" is not set', status, "credentials")
        keys[arg] = value
    return keys


def resolve_credentials(settings: Settings, workspace_id: str, credentials: dict,
                        status: int = 409) -> dict[str, str] | None:
    """boto3's keyword arguments for the referenced keys (None: unsigned). ConnectorError (reason
    credentials) when the reference names nothing this workspace may use."""
    source = credentials.get("source")
    if source == "anonymous":
        return None
    if source == "env":
        return _keys_from_env(settings, workspace_id, credentials, status)
    if source == "file":
        return _keys_from_file(settings, workspace_id, credentials["path"], status)
    raise ConnectorError(f'unknown credentials source "{source}"', status, "credentials")


def check_credentials(settings: Settings, workspace_id: str, credentials: dict) -> None:
    """When a connector is registered: the reference resolves (400 otherwise). The keys are dropped."""
    resolve_credentials(settings, workspace_id, credentials, status=400)


def _reason(exc: Exception) -> str:
    return s3_client.reason(exc, client_error="unavailable", other="unavailable")


class _Body:
    """An object's streamed body: read errors (a dropped connection, a timeout) are ResourceErrors."""

    def __init__(self, body, key: str):
        self._body, self._key = body, key

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read() if size is None or size < 0 else self._body.read(size)
        except (BotoCoreError, OSError) as exc:
            raise ResourceError(f'cannot read object "{self._key}": {_describe(exc)}', "unavailable") from None

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class S3Connector(Connector):
    type = "s3"

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str = "us-east-1",
                 keys: dict[str, str] | None = None, connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0,
                 max_attempts: int = 3, page_size: int = 1000):
        self.bucket, self.prefix, self.endpoint_url, self.page_size = bucket, prefix, endpoint_url, page_size
        # no endpoint_url means AWS's own: never an endpoint the process's environment names for its
        # blob store (AWS_ENDPOINT_URL), which SCANLEDGER_S3_ENDPOINTS never allowed for connectors
        config = s3_client.config(connect_timeout_s, read_timeout_s, max_attempts, path_style=bool(endpoint_url),
                                  unsigned=keys is None, configured_endpoint=False)
        self.client = s3_client.client(endpoint_url=endpoint_url, region_name=region, config=config, **(keys or {}))

    @classmethod
    def from_config(cls, settings: Settings, workspace_id: str, config: dict[str, Any]) -> S3Connector:
        return cls(config["bucket"], config.get("prefix", ""), config.get("endpoint_url"),
                   config.get("region", "us-east-1"),
                   resolve_credentials(settings, workspace_id, config["credentials"]),
                   connect_timeout_s=settings.s3_connect_timeout_s, read_timeout_s=settings.s3_read_timeout_s,
                   max_attempts=settings.s3_max_attempts)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _list_prefixes(self, prefixes) -> list[str]:
        """Server-side prefixes: the connector's, narrowed by a scan's (keys outside the connector's prefix
        are not its own), without one that another already covers."""
        if not prefixes:
            return [self.prefix]
        wanted = set()
        for p in prefixes:
            if p.startswith(self.prefix):
                wanted.add(p)
            elif self.prefix.startswith(p):
                wanted.add(self.prefix)
        return [p for p in sorted(wanted) if not any(p != q and p.startswith(q) for q in wanted)]

    def list_resources(self, prefixes=(), extensions=None) -> Iterator[Resource]:
        paginator = self.client.get_paginator("list_objects_v2")
        for prefix in self._list_prefixes(tuple(prefixes or ())):
            pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix,
                                       PaginationConfig={"PageSize": self.page_size})
            try:
                for page in pages:
                    for obj in page.get("Contents", ()):
                        key = obj["Key"]
                        if key.endswith("/") or not selected(key, (), extensions):  # a "folder" marker
                            continue
                        yield Resource(key, obj.get("Size"), iso(obj["LastModified"]) if obj.get("LastModified")
                                       else None, (obj.get("ETag") or "").strip('"') or None)
            except (BotoCoreError, ClientError) as exc:
                raise ConnectorError(f"cannot list {self.where}: {_describe(exc)}", 409, _reason(exc)) from None

    def probe(self, sample: str | None = None) -> None:
        """One byte of `sample` (or a one-key listing without one): what answers tells a source this
        process cannot use (keys refused, no such bucket, no endpoint) from one object it may not read."""
        try:
            if sample is None:
                self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
            else:
                self.client.get_object(Bucket=self.bucket, Key=sample, Range="bytes=0-0")["Body"].close()
        except ClientError as exc:
            code = _code(exc)
            if code in CREDENTIAL_CODES or code == "NoSuchBucket" or (sample is None and code in PERMISSION_CODES):
                raise ConnectorError(f"cannot read {self.where}: {_describe(exc)}", 409, _reason(exc)) from None
            # NoSuchKey, AccessDenied on that object, InvalidRange (an empty object): the source answers
        except BotoCoreError as exc:  # no answer at all: the endpoint is refused, unknown or unreachable
            raise ConnectorError(f"cannot reach {self.where}: {_describe(exc)}", 409, "unavailable") from None

    def open(self, name: str) -> _Body:
        if not name.startswith(self.prefix) or name.endswith("/"):
            raise ResourceError(f'object "{name}" not found', "missing")
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=name)
        except (BotoCoreError, ClientError) as exc:
            reason = _reason(exc)
            reason = "permission" if reason == "credentials" else reason
            message = f'object "{name}" not found' if reason == "missing" else \
                f'cannot read object "{name}" of {self.where}: {_describe(exc)}'
            raise ResourceError(message, reason) from None
        return _Body(answer["Body"], name)

    def close(self) -> None:
        self.client.close()
