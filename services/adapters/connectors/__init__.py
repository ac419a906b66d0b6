"""Connectors: the one registry of data sources and their readers (seed 000's datastores, seed 004's connectors).

A connector lists its resources (files, objects, tables) with their name, size and mtime or
ETag, without reading any data, and reads one resource's bytes (streamed) or its table. Three
types share this interface, wherever they were registered (`/api/datastores` with integer ids,
`/api/v1/connectors` with `conn-…` ids):

- `local_dir`: every file under a directory (a resource is its path relative to the
  directory); `sqlite`: every table of a database (its bytes are the table as CSV);
  `s3`: every object under a bucket and prefix (s3.py).
- Paths are confined as decisions.md says (issue 10): inside the workspace's datastore root
  (`SCANLEDGER_DATASTORE_ROOT`, `<root>/<workspace_id>/` with
  `SCANLEDGER_DATASTORE_ROOT_PER_WORKSPACE=1`), clear of everything the system writes (data
  dir, database, blob store, broker data, cache, secrets dir), resolved with their symlinks
  when registered and again whenever a connector is opened to be read; a file of a
  `local_dir` must resolve inside that directory.

Errors: `ConnectorError` when the source as a whole cannot be used (not registered: 400; gone,
endpoint down, credentials refused: 409 with a `reason`); `ResourceError` for one resource
(`reason`: missing, permission, too_large, unreadable, unavailable). A scan reports either as
a failure reason; neither is ever a crash.
"""
from __future__ import annotations

from typing import Any

from services.adapters.connectors.base import Connector, ConnectorError, Resource, ResourceError, selected
from services.adapters.connectors.config import CONFIG_MODELS, check_endpoint
from services.adapters.connectors.confinement import check_allowed, resolve_path, system_paths, workspace_root
from services.adapters.connectors.local import LocalDirConnector
from services.adapters.connectors.s3 import S3Connector, check_credentials
from services.adapters.connectors.sqlite import SqliteConnector
from services.settings import Settings

__all__ = ["Connector", "ConnectorError", "LocalDirConnector", "Resource", "ResourceError", "S3Connector",
           "SqliteConnector", "connector_for", "public_config", "selected", "validate_config"]


def validate_config(settings: Settings, workspace_id: str, type_: str, config: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a connector's config, checked now so a scan never meets a bad one.

    pydantic's ValidationError for a malformed config; ConnectorError (400) for a path outside
    the root or a credential reference that names nothing the workspace may use. local_dir and
    sqlite also get `resolved_path`. Secrets are never part of it: only where to find them."""
    model = CONFIG_MODELS[type_].model_validate(config)
    out = model.model_dump(exclude_none=True)
    if type_ in ("local_dir", "sqlite"):
        try:
            resolved = resolve_path(workspace_root(settings, workspace_id), model.path, type_, system_paths(settings))
        except OSError as exc:  # a name the filesystem refuses (too long, …)
            raise ConnectorError(f"invalid path: {exc.strerror or exc}") from None
        out["resolved_path"] = str(resolved)
    else:
        check_endpoint(settings, model.endpoint_url)
        check_credentials(settings, workspace_id, model.credentials.model_dump(exclude_none=True))
    return out


def public_config(type_: str, config: dict[str, Any]) -> dict[str, Any]:
    """What an API response shows: the config as registered (references to secrets, never secrets)."""
    return {k: v for k, v in config.items() if k != "resolved_path"}


def connector_for(settings: Settings, workspace_id: str, type_: str, config: dict[str, Any]) -> Connector:
    """The registry: a registered source, checked again and ready to list and read.

    `config` is what validate_config stored (local_dir and sqlite need `resolved_path`, or
    `path` for an already resolved path). ConnectorError when it may no longer be read."""
    if type_ in ("local_dir", "sqlite"):
        path = check_allowed(settings, workspace_id, type_, config.get("resolved_path") or config["path"])
        return LocalDirConnector(path) if type_ == "local_dir" else SqliteConnector(path)
    if type_ == "s3":
        check_endpoint(settings, config.get("endpoint_url"))  # the allowlist may have changed since
        return S3Connector.from_config(settings, workspace_id, config)
    raise ConnectorError(f'unknown connector type "{type_}"')
