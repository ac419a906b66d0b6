"""S3 clients for every user of S3 in a process (the s3 connector, the blob store on S3), over boto3.

One boto3 session per process: a new session loads botocore's models again (about 0.3 s of CPU,
paid by every chunk of a scan); clients of one session share them. Each client gets its own
endpoint, region, config and keys; a session is not thread-safe to create clients from, so they
are made under a lock (the clients themselves are thread-safe). Every client has a connect and a
read timeout and a bounded number of attempts (SCANLEDGER_S3_CONNECT_TIMEOUT, _READ_TIMEOUT,
_MAX_ATTEMPTS), so an endpoint that is down is a clear failure, not a hang.
"""
from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError

CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                    "AuthorizationHeaderMalformed", "InvalidSecurity", "TokenRefreshRequired"}
PERMISSION_CODES = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
MISSING_CODES = {"NoSuchBucket", "NoSuchKey", "404", "NotFound"}

_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def client(**kwargs: Any):
    """An S3 client from the process's one boto3 session (kwargs as `Session.client`'s)."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", **kwargs)


def config(connect_timeout_s: float, read_timeout_s: float, max_attempts: int, path_style: bool = False,
           unsigned: bool = False, configured_endpoint: bool = True) -> Config:
    """A client's config: its timeouts and attempts; path-style addressing (an S3-compatible endpoint
    other than AWS's); unsigned requests (a public bucket); `configured_endpoint=False`: the client
    ignores AWS_ENDPOINT_URL and the AWS config's endpoint_url (a client that names no endpoint then
    means AWS's own, whatever the process's environment sets for other clients)."""
    return Config(connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
                  retries={"max_attempts": max_attempts, "mode": "standard"},
                  s3={"addressing_style": "path"} if path_style else None,
                  signature_version=UNSIGNED if unsigned else None,
                  ignore_configured_endpoint_urls=not configured_endpoint)


def error_code(exc: ClientError) -> str:
    """The error's code (`NoSuchBucket`), or its HTTP status when the answer had no body (a HEAD's)."""
    return str(exc.response.get("Error", {}).get("Code") or exc.response.get("ResponseMetadata", {}).get(
        "HTTPStatusCode", ""))


def reason(exc: Exception, client_error: str, other: str) -> str:
    """credentials | permission | missing, or else `client_error` for another answer of S3's and `other`
    for no answer (unreachable)."""
    if isinstance(exc, NoCredentialsError):
        return "credentials"
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in CREDENTIAL_CODES:
            return "credentials"
        if code in PERMISSION_CODES:
            return "permission"
        if code in MISSING_CODES:
            return "missing"
        return client_error
    return other


def describe(exc: Exception) -> str:
    """What went wrong, in one line, never a secret: `NoSuchBucket: The specified bucket does not exist`."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        text = f"{error_code(exc)}: {error.get('Message') or 'refused'}"
    else:
        text = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    return " ".join(text.split())
