"""The local broker's jars: the pinned list in jars.txt (coordinates, size, sha256), fetched over HTTPS
from SCANLEDGER_MAVEN_REPO (Maven Central by default) into `<cache_dir>/kafka-<version>/libs` the first
time, each checked against its sha256 before it is used.

A jar is written to a hidden temp file and renamed once its checksum matches, so an interrupted or
refused fetch leaves no partial jar and the next one fetches only what is missing. Processes sharing
the cache take turns under a lock. The broker's classpath is the list, not whatever the directory holds.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from cli.localbroker.errors import BrokerError
from cli.localbroker.fetch_progress import FetchProgress
from cli.localbroker.locking import locked

PINNED_LIST = Path(__file__).resolve().parent / "jars.txt"
CENTRAL = "https://repo1.maven.org/maven2"
_MARKER = ".complete"


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    size: int
    sha256: str

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repo: str) -> str:
        return f"{repo.rstrip('/')}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file}"


def read_pinned(path: Path = PINNED_LIST) -> list[Jar]:
    jars = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            coordinates, size, sha256 = line.split()
            group, artifact, version = coordinates.split(":")
            jars.append(Jar(group, artifact, version, int(size), sha256))
    return jars


PINNED: list[Jar] = read_pinned()
KAFKA_VERSION: str = next(j.version for j in PINNED if j.coordinates.startswith("org.apache.kafka:kafka_2.13:"))


def libs_dir(settings) -> Path:
    return Path(settings.cache_dir).expanduser().resolve() / f"kafka-{KAFKA_VERSION}" / "libs"


def classpath_of(libs: Path) -> str:
    return os.pathsep.join(str(libs / jar.file) for jar in PINNED)


def _marker_text() -> str:
    return "".join(f"{jar.file} {jar.sha256}\n" for jar in PINNED)


def _complete(libs: Path) -> bool:
    """Fetched and verified before: the marker names this list, and every jar is there at its size."""
    try:
        return ((libs / _MARKER).read_text() == _marker_text()
                and all((libs / jar.file).stat().st_size == jar.size for jar in PINNED))
    except OSError:
        return False


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _shown(url: str) -> str:
    """The URL without a user or password a mirror's address may carry."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def ensure_jars(settings) -> Path:
    """The directory holding the broker's pinned jars, fetching those missing the first time."""
    libs = libs_dir(settings)
    if _complete(libs):
        return libs
    try:
        with locked(libs.parent / ".fetch.lock"):
            if _complete(libs):  # another process fetched while we waited
                return libs
            libs.mkdir(parents=True, exist_ok=True)
            for stale in libs.glob(".*.part"):  # a fetch killed mid-jar (we hold the lock: nobody is writing)
                stale.unlink()
            (libs / _MARKER).unlink(missing_ok=True)
            missing = [jar for jar in PINNED if _sha256(libs / jar.file) != jar.sha256]
            if missing:
                _fetch(missing, libs, settings.maven_repo)
            (libs / _MARKER).write_text(_marker_text())
    except OSError as exc:
        raise BrokerError(f"could not write the broker's jars into {libs}: {exc.strerror or exc}; make it "
                          "writable or set SCANLEDGER_CACHE_DIR") from exc
    return libs


def _fetch(jars: list[Jar], libs: Path, repo: str) -> None:
    title = (f"fetching Apache Kafka {KAFKA_VERSION} for the local broker ({len(jars)} jars) from "
             f"{_shown(repo)} into {libs}")
    with (httpx.Client(timeout=httpx.Timeout(60, connect=15), follow_redirects=True) as client,
          FetchProgress(title, sum(jar.size for jar in jars)) as progress):
        for jar in jars:
            _fetch_one(client, jar, libs, repo, progress)


def _fetch_one(client: httpx.Client, jar: Jar, libs: Path, repo: str, progress: FetchProgress) -> None:
    where = f"SCANLEDGER_MAVEN_REPO ({_shown(repo)})"
    fd, name = tempfile.mkstemp(prefix=f".{jar.file}.", suffix=".part", dir=libs)
    part = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with client.stream("GET", jar.url(repo)) as response:
                    if response.status_code != 200:
                        raise BrokerError(f"{jar.file}: {_shown(jar.url(repo))} answered HTTP "
                                          f"{response.status_code}; {where} must be a Maven repository "
                                          f"holding {jar.coordinates}")
                    for chunk in response.iter_bytes(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        progress.advance(len(chunk))
            except httpx.HTTPError as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise BrokerError(f"could not fetch {jar.file} from {where}: {reason}") from exc
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != jar.sha256:
            raise BrokerError(f"{jar.file} from {where} is not the pinned {jar.coordinates} (sha256 "
                              f"{digest.hexdigest()}, pinned {jar.sha256}) and was removed; point "
                              "SCANLEDGER_MAVEN_REPO at Maven Central or a faithful mirror of it")
        part.chmod(0o644)
        os.replace(part, libs / jar.file)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
