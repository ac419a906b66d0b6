"""Connectors: the one registry of data sources and their readers (seed 000's datastores, seed 004's connectors).

A connector lists its resources (files, objects, tables) with their name, size and mtime or
ETag, without reading any data, and reads one resource's bytes (streamed) or its table. Three
types share this interface, wherever they were registered (`/api/datastores` with integer ids,
`/api/v1/connectors` with `conn-…` ids):

- `local_dir`: every file under a directory (a resource is its path relative to the
  directory); `sqlite`: every table of a database (its bytes are the table as CSV);
  `s3`: every object under a bucket and prefix (services/adapters/s3.py).
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

import csv
import io
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.adapters.db import UnsupportedDatabase, sqlite_path
from services.adapters.readers import Dialect, InputError, detect_format, read_with_dialect
from services.settings import origin

TYPES = ("local_dir", "sqlite", "s3")
MAX_PATH = 4096


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

    def as_dict(self) -> dict:
        return asdict(self)


def iso(ts: float | datetime) -> str:
    when = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


# --- confinement (issue 10) ---

def workspace_root(settings, workspace_id: str) -> Path:
    """The one directory a workspace's local sources must resolve inside."""
    root = Path(settings.datastore_root).resolve()
    if getattr(settings, "datastore_root_per_workspace", False):
        return root / workspace_id
    return root


def system_paths(settings) -> list[Path]:
    """Everything the system writes or keeps secret: never reachable as (or inside) a source."""
    paths = [settings.data_dir, settings.blob_dir, settings.broker_dir, settings.cache_dir]
    if getattr(settings, "secrets_dir", None):
        paths.append(settings.secrets_dir)
    try:
        db = sqlite_path(settings.db_url)
        paths += [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    except UnsupportedDatabase:
        pass
    return [Path(p).resolve() for p in paths]


def _overlaps(path: Path, other: Path) -> bool:
    return path == other or other in path.parents or path in other.parents


def resolve_path(root: Path, path: str, type_: str, forbidden: list[Path] = ()) -> Path:
    """A path given by an API user, resolved (symlinks too) and confined; ConnectorError (400) otherwise."""
    root = Path(root).resolve()
    if "\x00" in path:
        raise ConnectorError(f'path "{path!r}" is not a valid path')
    try:
        resolved = (root / path).resolve()  # resolves symlinks too: a link out of the root is outside
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"path is not a valid path: {exc}") from None
    if resolved != root and root not in resolved.parents:
        raise ConnectorError(f'path "{path}" is outside the datastore root')
    if any(_overlaps(resolved, Path(f)) for f in forbidden):
        raise ConnectorError(f'path "{path}" holds or is inside the system\'s own data: not a datastore')
    if type_ == "local_dir" and not resolved.is_dir():
        raise ConnectorError(f'path "{path}" is not a directory')
    if type_ == "sqlite" and not resolved.is_file():
        raise ConnectorError(f'path "{path}" is not a file')
    if type_ == "sqlite" and not _is_sqlite(resolved):
        raise ConnectorError(f'path "{path}" is not a SQLite database')
    return resolved


def _is_sqlite(path: Path) -> bool:
    """Opens read-only as a database and has a schema to read (a CSV renamed .db does not)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.Error:
        return False


def check_allowed(settings, workspace_id: str, type_: str, path: str | Path) -> Path:
    """A registered source again, before it is read: still inside its workspace's root
    (symlinks may have changed since) and clear of the system's own data (409 otherwise).

    A relative path (a BYOC worker's: the deployment config gives the path as registered, never
    the server's) is relative to the root, whatever the process's working directory."""
    root = workspace_root(settings, workspace_id)
    resolved = (root / path).resolve()  # an absolute path stays itself
    if resolved != root and root not in resolved.parents:
        raise ConnectorError("the datastore is outside its workspace's datastore root", 409, "forbidden")
    if any(_overlaps(resolved, f) for f in system_paths(settings)):
        raise ConnectorError("the datastore holds or is inside the system's own data", 409, "forbidden")
    return resolved


# --- local_dir ---

class LocalDirConnector(Connector):
    type = "local_dir"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def list_resources(self, prefixes=(), extensions=None) -> Iterator[Resource]:
        if not self.path.is_dir():
            raise ConnectorError(f'directory "{self.path.name}" is gone', 409, "missing")
        inside = self.path.resolve()
        # os.walk and DirEntry, not rglob and Path: a listing of 100k files took 11 s in pathlib's
        # per-file resolve and sort. Linked directories are not followed (as rglob); a linked file
        # counts only if it resolves inside the directory. Ordered by path components, as before.
        found = []
        for top, dirs, files in os.walk(self.path):
            dirs.sort()
            base = os.path.relpath(top, self.path)
            parts = () if base == "." else tuple(Path(base).parts)
            found += [((*parts, f), top, f) for f in files]
        found.sort()
        for parts, top, file in found:
            name = "/".join(parts)
            if not selected(name, prefixes, extensions):
                continue
            path = os.path.join(top, file)
            try:
                st = os.stat(path)  # follows a link: its target's size and mtime
                if not stat.S_ISREG(st.st_mode):
                    continue
                if os.path.islink(path) and inside not in Path(path).resolve().parents:  # a link out of the directory
                    continue
            except OSError:  # gone or unreadable since the walk saw it: the read will say which
                continue
            yield Resource(name, st.st_size, iso(st.st_mtime))

    def probe(self, sample: str | None = None) -> None:
        if not self.path.is_dir():
            raise ConnectorError(f'directory "{self.path}" does not exist', 409, "missing")

    def _file(self, name: str) -> Path:
        file = (self.path / name).resolve()
        if self.path.resolve() not in file.parents or not file.is_file():
            raise ResourceError(f'file "{name}" not found', "missing")
        return file

    def open(self, name: str) -> BinaryIO:
        file = self._file(name)
        try:
            return open(file, "rb")  # the caller closes it
        except PermissionError:
            raise ResourceError(f'file "{name}": permission denied', "permission") from None
        except FileNotFoundError:
            raise ResourceError(f'file "{name}" not found', "missing") from None
        except OSError as exc:
            raise ResourceError(f'cannot open "{name}": {exc.strerror or exc}', "unavailable") from None


# --- sqlite ---

SQLITE_TYPES = (("INT", pa.int64()), ("REAL", pa.float64()), ("FLOA", pa.float64()), ("DOUB", pa.float64()),
                ("BOOL", pa.bool_()))


def _arrow_type(declared: str) -> pa.DataType:
    """SQLite's type affinity rules, roughly: declared INT → int64, REAL/FLOAT/DOUBLE → float64."""
    upper = (declared or "").upper()
    return next((t for marker, t in SQLITE_TYPES if marker in upper), pa.string())


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteConnector(Connector):
    """Tables as resources. A table's bytes are its rows as CSV (a header, then the rows);
    its size is unknown without reading it (None), its mtime the database file's."""
    type = "sqlite"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def probe(self, sample: str | None = None) -> None:
        if not self.path.is_file():
            raise ConnectorError(f'database file "{self.path}" does not exist', 409, "missing")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def list_resources(self, prefixes=(), extensions=None) -> Iterator[Resource]:
        try:
            with self._connect() as db:
                rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                                  " ORDER BY name").fetchall()
            mtime = iso(max(p.stat().st_mtime for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                            if p.exists()))
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise ConnectorError(f'cannot read SQLite database "{self.path.name}": {exc}', 409, "unavailable") from None
        for (name,) in rows:
            if selected(name, prefixes):  # a table has no extension: file type filters do not apply
                yield Resource(name, None, mtime, kind="table")

    def _rows(self, name: str, limit: int | None = None) -> tuple[list, list]:
        try:
            with self._connect() as db:
                columns = db.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()
                if not columns:
                    raise ResourceError(f'table "{name}" not found', "missing")
                sql = f"SELECT * FROM {_quoted(name)}" + ("" if limit is None else " LIMIT ?")
                rows = db.execute(sql, () if limit is None else (limit,)).fetchall()
        except sqlite3.Error as exc:
            raise ResourceError(f'cannot read table "{name}": {exc}') from None
        return columns, rows

    def open(self, name: str) -> BinaryIO:
        columns, rows = self._rows(name)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow([c[1] for c in columns])
        writer.writerows(rows)
        return io.BytesIO(text.getvalue().encode())

    def read_table(self, name: str, max_records: int, dialect: dict | None = None) -> pa.Table:
        columns, rows = self._rows(name, max_records + 1)  # a table has types of its own: no dialect
        if len(rows) > max_records:
            raise ResourceError(f'table "{name}" has more than {max_records} rows', "too_large")
        arrays = {}
        for i, (_, col, declared, *_rest) in enumerate(columns):
            values = [r[i] for r in rows]
            try:
                arrays[col] = pa.array(values, type=_arrow_type(declared))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed values in a loosely typed column
                arrays[col] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        return pa.table(arrays)


# --- configuration: what an API user registers (validated here, stored as given) ---

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


def validate_config(settings, workspace_id: str, type_: str, config: dict[str, Any]) -> dict[str, Any]:
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
        from services.adapters import s3

        check_endpoint(settings, model.endpoint_url)
        s3.check_credentials(settings, workspace_id, model.credentials.model_dump(exclude_none=True))
    return out


def check_endpoint(settings, endpoint_url: str | None) -> None:
    """An S3-compatible endpoint must be one the operator allowed (SCANLEDGER_S3_ENDPOINTS):
    a URL a user picks would make the server send requests, signed with a workspace's keys,
    to any address it can reach. No endpoint_url means AWS's own."""
    if endpoint_url and origin(endpoint_url) not in settings.s3_endpoints:
        raise ConnectorError(f'endpoint_url "{origin(endpoint_url)}" is not an allowed S3 endpoint '
                             "(the operator lists them in SCANLEDGER_S3_ENDPOINTS)", reason="endpoint")


def public_config(type_: str, config: dict[str, Any]) -> dict[str, Any]:
    """What an API response shows: the config as registered (references to secrets, never secrets)."""
    return {k: v for k, v in config.items() if k != "resolved_path"}


def connector_for(settings, workspace_id: str, type_: str, config: dict[str, Any]) -> Connector:
    """The registry: a registered source, checked again and ready to list and read.

    `config` is what validate_config stored (local_dir and sqlite need `resolved_path`, or
    `path` for an already resolved path). ConnectorError when it may no longer be read."""
    if type_ in ("local_dir", "sqlite"):
        path = check_allowed(settings, workspace_id, type_, config.get("resolved_path") or config["path"])
        return LocalDirConnector(path) if type_ == "local_dir" else SqliteConnector(path)
    if type_ == "s3":
        from services.adapters import s3

        check_endpoint(settings, config.get("endpoint_url"))  # the allowlist may have changed since
        return s3.S3Connector.from_config(settings, workspace_id, config)
    raise ConnectorError(f'unknown connector type "{type_}"')


def env_prefix(settings, workspace_id: str) -> str:
    """Environment variables a workspace may name: SCANLEDGER_SECRET_ (per-workspace roots:
    SCANLEDGER_SECRET_<WORKSPACE>__, the id upper-cased with `_` for `-`, ended by a double
    `_` that no workspace id gives, so `ws` never reaches `ws-a`'s), so no connector can send
    another variable of the process to an endpoint."""
    prefix = getattr(settings, "secrets_env_prefix", "SCANLEDGER_SECRET_")
    if getattr(settings, "datastore_root_per_workspace", False):
        prefix += "".join(ch if ch.isalnum() else "_" for ch in workspace_id.upper()) + "__"
    return prefix


def secrets_root(settings, workspace_id: str) -> Path | None:
    """The directory a workspace's secret files must resolve inside (None: no secret files)."""
    base = getattr(settings, "secrets_dir", None)
    if not base:
        return None
    root = Path(base).resolve()
    return root / workspace_id if getattr(settings, "datastore_root_per_workspace", False) else root


def env_value(name: str) -> str | None:
    return os.environ.get(name) or None
