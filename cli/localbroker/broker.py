"""The project's own single-node Apache Kafka broker (KRaft), run from jars fetched off Maven Central.

No Docker and no Kafka download: `pom.xml` next to this file names the broker and its run-time
dependencies; `ensure_jars` has Maven copy them once into `<cache_dir>/kafka-<version>/libs`, and
`start` runs `kafka.Kafka` from there as a detached JVM whose data, configuration, logs and pid file
live in `settings.broker_dir`. The broker listens on 127.0.0.1:<broker_port> and its controller on
the next port. Storage is formatted only once, so a restart keeps every topic and record.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

POM = Path(__file__).resolve().parent / "pom.xml"
_MARKER = ".complete"
_PID_FILE = "broker.pid"
# Brokers this process started, kept so they are reaped (no zombie, no "still running" ResourceWarning).
_children: dict[int, subprocess.Popen] = {}


class BrokerError(Exception):
    """The local broker could not be fetched, started or reached."""


def _read_kafka_version(pom: Path = POM) -> str:
    text = pom.read_text(encoding="utf-8")
    try:
        root = ET.fromstring(text)
        for element in root.iter():
            if element.tag.rsplit("}", 1)[-1] == "kafka.version" and element.text:
                return element.text.strip()
    except ET.ParseError:
        pass
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", text)
    if not match:
        raise BrokerError(f"no <kafka.version> property in {pom}")
    return match.group(1)


KAFKA_VERSION: str = _read_kafka_version()


# --------------------------------------------------------------------------- tools


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise BrokerError("no `java` found (set JAVA_HOME or put java on PATH); "
                          f"the local Kafka {KAFKA_VERSION} broker needs a JDK 17 or newer")
    return found


def _mvn() -> str:
    found = shutil.which("mvn")
    if not found:
        for var in ("MAVEN_HOME", "M2_HOME"):
            home = os.environ.get(var)
            if home and (Path(home) / "bin" / "mvn").is_file():
                return str(Path(home) / "bin" / "mvn")
        raise BrokerError("no `mvn` found on PATH; Maven 3 is needed once, to fetch the local Kafka "
                          f"{KAFKA_VERSION} broker from Maven Central (or set KAFKA_BOOTSTRAP_SERVERS "
                          "to use a Kafka you already have)")
    return found


def _check_java_version(java: str) -> None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"could not run {java} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0_x"
            major = int(match.group(2))
        if major < 17:
            raise BrokerError(f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java 17 or newer "
                              "(set JAVA_HOME to a newer JDK)")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 30, start: int = 0) -> str:
    """The last lines of path, reading no further back than byte offset start."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(start if start <= size else 0, size - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------- jars


def _libs_dir(settings) -> Path:
    return Path(settings.cache_dir).expanduser().resolve() / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_jars(settings) -> Path:
    """The directory holding the broker's jars, fetching them with Maven the first time."""
    libs = _libs_dir(settings)
    if (libs / _MARKER).is_file():
        return libs
    home = libs.parent
    with _locked(home / ".fetch.lock"):
        if (libs / _MARKER).is_file():  # another process fetched while we waited
            return libs
        mvn = _mvn()
        print(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central…", file=sys.stderr, flush=True)
        if libs.exists():  # left by something other than us; never trust a dir without the marker
            shutil.rmtree(libs)
        tmp = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=home))
        try:
            cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
                   "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
            try:
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, errors="replace")
            except OSError as exc:
                raise BrokerError(f"could not run {mvn}: {exc}") from exc
            jars = sorted(p.name for p in tmp.glob("*.jar"))
            if proc.returncode != 0 or not any(n.startswith("kafka_2.13-") for n in jars):
                plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stdout)
                last = "\n".join(line for line in plain.splitlines()[-25:])
                raise BrokerError(f"fetching Kafka {KAFKA_VERSION} with Maven failed "
                                  f"(exit {proc.returncode}):\n{last}")
            tmp.chmod(0o755)
            (tmp / _MARKER).write_text(f"kafka {KAFKA_VERSION}\n" + "\n".join(jars) + "\n")
            os.replace(tmp, libs)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return libs


# --------------------------------------------------------------------------- process bookkeeping


def _broker_dir(settings) -> Path:
    return Path(settings.broker_dir).expanduser().resolve()


def _pid_path(settings) -> Path:
    return _broker_dir(settings) / _PID_FILE


def _is_ours(pid: int, settings) -> bool:
    """True if pid is a live kafka.Kafka JVM started on this data dir's server.properties."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        _reap(pid)
        return False
    args = raw.decode("utf-8", "replace").split("\0")
    return "kafka.Kafka" in args and str(_broker_dir(settings) / "server.properties") in args


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _running_pid(settings) -> int | None:
    """The pid of our broker, or None; a stale pid file is removed."""
    path = _pid_path(settings)
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        pid = None
    if pid is not None and _is_ours(pid, settings):
        return pid
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


# --------------------------------------------------------------------------- probing


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        item = item.strip().split("://")[-1]
        if not item:
            continue
        host, _, port = item.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        with contextlib.suppress(ValueError):
            out.append((host, int(port)))
    return out


def _answers(bootstrap: str, timeout: float) -> bool:
    """One metadata round trip through a confluent_kafka AdminClient."""
    import logging

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("scanledger.localbroker.probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000,
                         "log.connection.close": False}, logger=quiet)
    try:
        metadata = admin.list_topics(timeout=max(0.5, timeout))
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _wait(bootstrap: str, wait_s: float, alive: Callable[[], bool] | None = None) -> bool:
    """Poll until the bootstrap answers (True), the process dies (False) or time runs out (BrokerError)."""
    deadline = time.monotonic() + wait_s
    hosts = _hosts(bootstrap)
    delay = 0.1
    while True:
        if alive is not None and not alive():
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"no Kafka broker answered at {bootstrap} within {wait_s:.0f}s")
        if (not hosts or any(_tcp_open(h, p) for h, p in hosts)) and _answers(bootstrap, min(5.0, remaining)):
            return True
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 1.0)


# --------------------------------------------------------------------------- configuration


def _cluster_id() -> str:
    """A random Kafka cluster id. Like Kafka's Uuid.randomUuid, never one starting with '-':
    the storage tool would read it as an option (1 start in 64 failed that way)."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


def _server_properties(settings, broker_dir: Path) -> str:
    port = int(settings.broker_port)
    return "\n".join([
        "# Written by scan-ledger (cli/localbroker) on every start; edits are overwritten.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{port + 1}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={broker_dir / 'logs'}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "auto.create.topics.enable=false",
        "group.initial.rebalance.delay.ms=0",
        "",
    ])


def _log4j2_properties(broker_dir: Path) -> str:
    log = broker_dir / "server.log"
    return "\n".join([
        "# Written by scan-ledger (cli/localbroker) on every start.",
        "status = warn",
        "name = scanledger-local-broker",
        "appender.file.type = RollingFile",
        "appender.file.name = FILE",
        f"appender.file.fileName = {log}",
        f"appender.file.filePattern = {log}.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 50MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
        "logger.request.name = kafka.request.logger",
        "logger.request.level = WARN",
        "logger.zk.name = org.apache.zookeeper",
        "logger.zk.level = WARN",
        "",
    ])


def _configured_port(props: Path) -> int | None:
    try:
        text = props.read_text()
    except OSError:
        return None
    match = re.search(r"^advertised\.listeners=PLAINTEXT://[^:\s]+:(\d+)", text, re.M)
    return int(match.group(1)) if match else None


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def _port_free(port: int) -> bool:
    if _tcp_open("127.0.0.1", port, timeout=0.3):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_LOGS = ("stdout.log", "server.log")


def _log_sizes(broker_dir: Path) -> dict[str, int]:
    sizes = {}
    for name in _LOGS:
        try:
            sizes[name] = (broker_dir / name).stat().st_size
        except OSError:
            sizes[name] = 0
    return sizes


def _log_tails(broker_dir: Path, since: dict[str, int] | None = None) -> str:
    """The tails of the broker's logs, only what was written after the offsets in since."""
    parts = []
    for name in _LOGS:
        tail = _tail(broker_dir / name, 25, (since or {}).get(name, 0))
        if tail.strip():
            parts.append(f"--- {broker_dir / name} (tail) ---\n{tail}")
    return "\n".join(parts) or "(no broker output)"


# --------------------------------------------------------------------------- the API


def start(settings, wait_s: float = 90) -> None:
    """Start this data dir's broker (or find it running) and return once it answers."""
    broker_dir = _broker_dir(settings)
    broker_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = f"127.0.0.1:{int(settings.broker_port)}"
    with _locked(broker_dir / ".start.lock"):
        pid = _running_pid(settings)
        if pid is not None:
            running_port = _configured_port(broker_dir / "server.properties")
            if running_port is not None and running_port != int(settings.broker_port):
                raise BrokerError(f"the broker of {settings.data_dir} (pid {pid}) is already running on port "
                                  f"{running_port}, not {settings.broker_port}; stop it (`scanledger broker stop` "
                                  "with the same data dir) to change its port")
            try:
                if _wait(bootstrap, wait_s, lambda: _alive(pid)):
                    return
            except BrokerError:
                pass
            if _alive(pid):
                raise BrokerError(f"the broker of {settings.data_dir} (pid {pid}) is running but does not answer "
                                  f"at {bootstrap}; stop it (`scanledger broker stop`) and start again\n"
                                  + _log_tails(broker_dir))
            _running_pid(settings)  # it died meanwhile: clear the pid file and start afresh

        java = _java()
        libs = ensure_jars(settings)
        _check_java_version(java)

        props = broker_dir / "server.properties"
        log4j = broker_dir / "log4j2.properties"
        (broker_dir / "logs").mkdir(exist_ok=True)
        _write_if_changed(props, _server_properties(settings, broker_dir))
        _write_if_changed(log4j, _log4j2_properties(broker_dir))
        classpath = f"{libs}/*"
        log_opt = f"-Dlog4j2.configurationFile={log4j}"

        if not (broker_dir / "logs" / "meta.properties").exists():
            fmt = subprocess.run([java, log_opt, "-cp", classpath, "kafka.tools.StorageTool", "format",
                                  "-t", _cluster_id(), "-c", str(props)],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
            if fmt.returncode != 0:
                out = "\n".join((fmt.stdout + fmt.stderr).splitlines()[-25:])
                raise BrokerError(f"formatting the broker storage in {broker_dir / 'logs'} failed:\n{out}")

        port = int(settings.broker_port)
        for p, what in ((port, "broker"), (port + 1, "controller")):
            if not _port_free(p):
                raise BrokerError(f"port {p} (the local {what} port) is already in use by another process; "
                                  "stop it, or choose another SCANLEDGER_BROKER_PORT (the controller uses the "
                                  "next port), or point KAFKA_BOOTSTRAP_SERVERS at that Kafka")

        since = _log_sizes(broker_dir)
        heap = int(settings.broker_heap_mb)
        cmd = [java, f"-Xmx{heap}m", f"-Xms{heap}m", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-Djava.awt.headless=true",
               # keep log4j alive until Kafka's own shutdown hook has logged its clean shutdown
               "-Dlog4j2.shutdownHookEnabled=false",
               f"-Dkafka.logs.dir={broker_dir}", log_opt, "-cp", classpath, "kafka.Kafka", str(props)]
        with open(broker_dir / "stdout.log", "ab") as out:
            out.write(f"\n=== starting Kafka {KAFKA_VERSION} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
            out.flush()
            try:
                proc = subprocess.Popen(cmd, cwd=broker_dir, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
            except OSError as exc:
                raise BrokerError(f"could not start {java}: {exc}") from exc
        _children[proc.pid] = proc
        _pid_path(settings).write_text(f"{proc.pid}\n")

        try:
            answered = _wait(bootstrap, wait_s, lambda: proc.poll() is None)
        except BrokerError:
            _terminate(proc.pid, 10)
            _pid_path(settings).unlink(missing_ok=True)
            raise BrokerError(f"the local Kafka broker did not answer at {bootstrap} within {wait_s:.0f}s "
                              f"and was stopped\n" + _log_tails(broker_dir, since)) from None
        if not answered:
            _pid_path(settings).unlink(missing_ok=True)
            raise BrokerError(f"the local Kafka broker exited with code {proc.returncode} while starting\n"
                              + _log_tails(broker_dir, since))


def _terminate(pid: int, timeout_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def stop(settings, timeout_s: float = 30) -> bool:
    """Stop this data dir's broker; False if it was not running."""
    pid = _running_pid(settings)
    if pid is None:
        return False
    _terminate(pid, timeout_s)
    _pid_path(settings).unlink(missing_ok=True)
    return True


def status(settings) -> dict:
    pid = _running_pid(settings)
    bootstrap = settings.bootstrap_servers
    hosts = _hosts(bootstrap)
    answers = bool(hosts) and any(_tcp_open(h, p) for h, p in hosts) and _answers(bootstrap, 3.0)
    return {"running": pid is not None, "pid": pid, "bootstrap": bootstrap,
            "data_dir": str(settings.data_dir), "answers": answers}
