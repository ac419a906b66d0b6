"""What an API user registers for each connector type: validated here, stored as given."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.adapters.connectors.base import ConnectorError
from services.settings import Settings, origin

MAX_PATH = 4096


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


class PathConfig(BaseModel):
    """local_dir and sqlite: a path relative to the workspace's datastore root."""
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=MAX_PATH)
    _nul = field_validator("path")(_no_nul)


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]


class EnvCredentials(BaseModel):
    """Environment variables of the API and worker processes that hold the keys (their names only)."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["env"]
    access_key_id_env: EnvName
    secret_access_key_env: EnvName
    session_token_env: EnvName | None = None


class FileCredentials(BaseModel):
    """A JSON file under the secrets dir: {"access_key_id": …, "secret_access_key": …[, "session_token": …]}."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["file"]
    path: str = Field(min_length=1, max_length=MAX_PATH)
    _nul = field_validator("path")(_no_nul)


class AnonymousCredentials(BaseModel):
    """Unsigned requests: a public bucket."""
    model_config = ConfigDict(extra="forbid")
    source: Literal["anonymous"]


class S3Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    prefix: str = Field("", max_length=1024)
    endpoint_url: str | None = Field(None, max_length=2048, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    region: str = Field("us-east-1", min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")
    credentials: Annotated[EnvCredentials | FileCredentials | AnonymousCredentials, Field(discriminator="source")]
    _nul = field_validator("prefix")(_no_nul)


CONFIG_MODELS: dict[str, type[BaseModel]] = {"local_dir": PathConfig, "sqlite": PathConfig, "s3": S3Config}


def check_endpoint(settings: Settings, endpoint_url: str | None) -> None:
    """An S3-compatible endpoint must be one the operator allowed (SCANLEDGER_S3_ENDPOINTS):
    a URL a user picks would make the server send requests, signed with a workspace's keys,
    to any address it can reach. No endpoint_url means AWS's own."""
    if endpoint_url and origin(endpoint_url) not in settings.s3_endpoints:
        raise ConnectorError(f'endpoint_url "{origin(endpoint_url)}" is not an allowed S3 endpoint '
                             "(the operator lists them in SCANLEDGER_S3_ENDPOINTS)", reason="endpoint")
