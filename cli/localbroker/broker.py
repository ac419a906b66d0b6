"""The project's own Apache Kafka broker (KRaft), one node or a cluster, run from pinned jars.

No Docker, no Kafka download and no Maven: `jars.txt` next to this file pins the broker and its
run-time dependencies; `ensure_jars` (jars.py) fetches them once into `<cache_dir>/kafka-<version>/libs`
and `start` runs `kafka.Kafka` from there on the Java `find_java` (java.py) picks, as detached JVMs, one
per node (`settings.broker_nodes`), each a combined broker and controller whose data, configuration,
logs and pid file live in its own directory: `settings.broker_dir` for a single node,
`<broker_dir>/node-<i>` in a cluster. Node i (from 0) listens on 127.0.0.1:<broker_port + 2i> and its
controller on the next port. Storage is formatted only once, so a restart keeps every topic and record;
`start` starts whichever nodes are not running, so it also brings back a node that died.

With KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT the clients' listener asks for SASL (PLAIN, SCRAM-SHA-256
and SCRAM-SHA-512) and knows one user, KAFKA_SASL_USERNAME with KAFKA_SASL_PASSWORD: PLAIN from the
listener's JAAS config (written on every start), SCRAM from the credentials added when the storage is
formatted (its first start). With SSL or SASL_SSL it serves TLS (tls.py: SCANLEDGER_BROKER_SSL_CERT and
_KEY). The controller listener stays PLAINTEXT on 127.0.0.1.
"""
from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cli.localbroker.errors import BrokerError
from cli.localbroker.jars import KAFKA_VERSION, classpath_of, ensure_jars
from cli.localbroker.java import find_java
from cli.localbroker.locking import locked
from cli.localbroker.tls import BrokerTls, broker_tls, tls_lines, write_keystore

_PID_FILE = "broker.pid"
# Brokers this process started, kept so they are reaped (no zombie, no "still running" ResourceWarning).
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Node:
    index: int  # from 0
    dir: Path
    port: int
    cluster_size: int

    @property
    def id(self) -> int:
        return self.index + 1

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def props(self) -> Path:
        return self.dir / "server.properties"

    @property
    def name(self) -> str:
        return "the broker" if self.cluster_size == 1 else f"broker node {self.id}"


def nodes(settings) -> list[Node]:
    count = max(1, int(settings.broker_nodes))
    base = _broker_dir(settings)
    return [Node(i, base if count == 1 else base / f"node-{i + 1}", int(settings.broker_port) + 2 * i, count)
            for i in range(count)]


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


# --------------------------------------------------------------------------- process bookkeeping


def _broker_dir(settings) -> Path:
    return Path(settings.broker_dir).expanduser().resolve()


def _is_ours(pid: int, node: Node) -> bool:
    """True if pid is a live kafka.Kafka JVM started on this node's server.properties."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        _reap(pid)
        return False
    args = raw.decode("utf-8", "replace").split("\0")
    return "kafka.Kafka" in args and str(node.props) in args


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


def _running_pid(node: Node) -> int | None:
    """The pid of this node's JVM, or None; a stale pid file is removed."""
    path = node.dir / _PID_FILE
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        pid = None
    if pid is not None and _is_ours(pid, node):
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


def _answers(bootstrap: str, timeout: float, brokers: int = 1, client: dict | None = None) -> bool:
    """One metadata round trip through a confluent_kafka AdminClient: do `brokers` brokers answer?"""
    import logging

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("scanledger.localbroker.probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000,
                         "log.connection.close": False, **(client or {})}, logger=quiet)
    try:
        metadata = admin.list_topics(timeout=max(0.5, timeout))
    except KafkaException:
        return False
    return len(metadata.brokers) >= brokers


def _wait(bootstrap: str, wait_s: float, alive: Callable[[], bool] | None = None, brokers: int = 1,
          client: dict | None = None) -> bool:
    """Poll until `brokers` brokers answer at the bootstrap (True), a process dies (False) or time runs
    out (BrokerError)."""
    deadline = time.monotonic() + wait_s
    hosts = _hosts(bootstrap)
    delay = 0.1
    while True:
        if alive is not None and not alive():
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"{brokers} Kafka broker(s) did not answer at {bootstrap} within {wait_s:.0f}s")
        if (not hosts or any(_tcp_open(h, p) for h, p in hosts)) and _answers(bootstrap, min(5.0, remaining), brokers,
                                                                              client):
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


SCRAMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# what a user name and password of the local broker may hold: they go into a JAAS config, a properties
# file and the storage tool's --add-scram argument unquoted
_SASL_NAME = re.compile(r"[A-Za-z0-9._@-]+")
_SASL_PASSWORD = re.compile(r"[^\s\"\\,=\[\]]+")


def sasl_user(settings) -> tuple[str, str] | None:
    """The SASL user the clients' listener knows, or None for a listener without SASL; BrokerError for settings
    the local broker cannot serve."""
    security = settings.kafka_security
    if not security.sasl:
        return None
    if (problem := security.problem()) is not None:
        raise BrokerError(problem)
    if not _SASL_NAME.fullmatch(security.username):
        raise BrokerError("KAFKA_SASL_USERNAME: the local broker takes letters, digits and . _ @ - only")
    if not _SASL_PASSWORD.fullmatch(security.password):
        raise BrokerError("KAFKA_SASL_PASSWORD: the local broker takes no spaces, quotes, backslashes, commas, = or"
                          " brackets in it")
    return security.username, security.password


def _probe_config(settings) -> dict[str, str]:
    """What `start` and `status` ask the broker with: the settings' user by PLAIN, which the listener's JAAS
    config knows from each start (its SCRAM credentials are its first start's: the processes check those)."""
    from services.adapters.kafka_client import security_config

    security = settings.kafka_security
    return security_config(replace(security, mechanism="PLAIN") if security.sasl else security)


def _listener_lines(node: Node, user: tuple[str, str] | None, tls: BrokerTls | None = None) -> list[str]:
    """The clients' (and brokers') listener: PLAINTEXT, SSL, or SASL_PLAINTEXT / SASL_SSL knowing `user` by
    PLAIN and SCRAM."""
    name = ("SASL_" if user is not None else "") + ("PLAINTEXT" if tls is None else "SSL")
    lines = [f"listeners={name}://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
             f"advertised.listeners={name}://127.0.0.1:{node.port}",
             "controller.listener.names=CONTROLLER",
             f"listener.security.protocol.map={name}:{name},CONTROLLER:PLAINTEXT",
             f"inter.broker.listener.name={name}",
             *([] if tls is None else tls_lines(node.dir, tls))]
    if user is None:
        return lines
    username, password = user
    prefix = f"listener.name.{name.lower()}"
    return [*lines,
            f"sasl.enabled.mechanisms=PLAIN,{','.join(SCRAMS)}",
            "sasl.mechanism.inter.broker.protocol=PLAIN",  # the brokers talk to each other as the same user
            f'{prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="{username}" password="{password}" user_{username}="{password}";',
            *(f"{prefix}.{m.lower()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule"
              " required;" for m in SCRAMS)]


def _server_properties(node: Node, cluster: list[Node], user: tuple[str, str] | None = None,
                       tls: BrokerTls | None = None) -> str:
    # a cluster keeps its internal topics on up to 3 replicas, and writes need 2 of them in sync
    replicas = min(3, len(cluster))
    min_isr = 2 if replicas >= 3 else 1
    voters = ",".join(f"{m.id}@127.0.0.1:{m.controller_port}" for m in cluster)
    return "\n".join([
        "# Written by scan-ledger (cli/localbroker) on every start; edits are overwritten.",
        "process.roles=broker,controller",
        f"node.id={node.id}",
        f"controller.quorum.voters={voters}",
        *_listener_lines(node, user, tls),
        f"log.dirs={node.dir / 'logs'}",
        "num.partitions=1",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={min_isr}",
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
    match = re.search(r"^advertised\.listeners=(?:SASL_)?(?:PLAINTEXT|SSL)://[^:\s]+:(\d+)", text, re.M)
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

_CLUSTER_FILE = "cluster.properties"


def _cluster_id_for(settings, cluster: list[Node]) -> str:
    """The id to format a node's storage with. A cluster's nodes share one, kept in <broker_dir>/
    cluster.properties with the node count; a data dir formatted for another layout is refused, as
    starting it would come up empty beside the old storage."""
    base = _broker_dir(settings)
    single = (base / "logs" / "meta.properties").exists()
    record = base / _CLUSTER_FILE
    recorded = dict(line.split("=", 1) for line in record.read_text().split() if "=" in line) if record.exists() else {}
    layout = 1 if single else int(recorded.get("nodes", 0)) or None
    if layout is not None and layout != len(cluster):
        raise BrokerError(f"the broker storage in {base} is for {layout} node(s), not {len(cluster)}; keep "
                          f"SCANLEDGER_BROKER_NODES={layout} or use another data dir (SCANLEDGER_DATA_DIR)")
    if len(cluster) == 1:
        return _cluster_id()
    if not recorded:
        recorded = {"nodes": str(len(cluster)), "cluster.id": _cluster_id()}
        record.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(record, "".join(f"{k}={v}\n" for k, v in recorded.items()))
    return recorded["cluster.id"]


def _prepare(node: Node, cluster: list[Node], java: str, classpath: str, cluster_id: Callable[[], str],
             user: tuple[str, str] | None, tls: BrokerTls | None) -> str:
    """Write the node's configuration (and TLS key store), format its storage the first time (with the SCRAM
    credentials of `user`), check its ports; the log option."""
    (node.dir / "logs").mkdir(parents=True, exist_ok=True)
    log4j = node.dir / "log4j2.properties"
    if tls is not None:
        write_keystore(node.dir, tls)
    _write_if_changed(node.props, _server_properties(node, cluster, user, tls))
    node.props.chmod(0o600)  # it may hold the SASL user's password
    _write_if_changed(log4j, _log4j2_properties(node.dir))
    log_opt = f"-Dlog4j2.configurationFile={log4j}"
    if not (node.dir / "logs" / "meta.properties").exists():
        scram = [] if user is None else [arg for m in SCRAMS
                                         for arg in ("--add-scram", f"{m}=[name={user[0]},password={user[1]}]")]
        fmt = subprocess.run([java, log_opt, "-cp", classpath, "kafka.tools.StorageTool", "format",
                              "-t", cluster_id(), "-c", str(node.props), *scram],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
        if fmt.returncode != 0:
            out = "\n".join((fmt.stdout + fmt.stderr).splitlines()[-25:])
            raise BrokerError(f"formatting the storage of {node.name} in {node.dir / 'logs'} failed:\n{out}")
    for p, what in ((node.port, "broker"), (node.controller_port, "controller")):
        if not _port_free(p):
            raise BrokerError(f"port {p} (the local {what} port of {node.name}) is already in use by another "
                              "process; stop it, or choose another SCANLEDGER_BROKER_PORT (each node uses two "
                              "ports from it), or point KAFKA_BOOTSTRAP_SERVERS at that Kafka")
    return log_opt


def _launch(node: Node, java: str, classpath: str, log_opt: str, heap: int) -> subprocess.Popen:
    cmd = [java, f"-Xmx{heap}m", f"-Xms{heap}m", "-server",
           # A local broker shares a small machine with the worker and projector, and a scan is over in
           # seconds: C2 compiling the request path cost more CPU than it ever saved, and G1's concurrent
           # threads and barriers buy short pauses nobody waits on (docs/performance.md, fifth round).
           "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
           "-Djava.awt.headless=true",
           # keep log4j alive until Kafka's own shutdown hook has logged its clean shutdown
           "-Dlog4j2.shutdownHookEnabled=false",
           f"-Dkafka.logs.dir={node.dir}", log_opt, "-cp", classpath, "kafka.Kafka", str(node.props)]
    with open(node.dir / "stdout.log", "ab") as out:
        out.write(f"\n=== starting Kafka {KAFKA_VERSION} at {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=node.dir, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        except OSError as exc:
            raise BrokerError(f"could not start {java}: {exc}") from exc
    _children[proc.pid] = proc
    (node.dir / _PID_FILE).write_text(f"{proc.pid}\n")
    return proc


def _tails(cluster: list[Node], since: dict[Node, dict[str, int]] | None = None) -> str:
    return "\n".join(_log_tails(n.dir, (since or {}).get(n)) for n in cluster)


def start(settings, wait_s: float = 90) -> None:
    """Start this data dir's broker nodes that are not running (all of them, or one that died) and
    return once every node answers."""
    cluster = nodes(settings)
    user, tls = sasl_user(settings), broker_tls(settings)
    client = _probe_config(settings)
    base = _broker_dir(settings)
    base.mkdir(parents=True, exist_ok=True)
    bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in cluster)
    with locked(base / ".start.lock"):
        running: dict[Node, int] = {}
        for node in cluster:
            pid = _running_pid(node)
            if pid is None:
                continue
            running_port = _configured_port(node.props)
            if running_port is not None and running_port != node.port:
                raise BrokerError(f"{node.name} of {settings.data_dir} (pid {pid}) is already running on port "
                                  f"{running_port}, not {node.port}; stop it (`scanledger broker stop` "
                                  "with the same data dir) to change its port")
            running[node] = pid
        missing = [n for n in cluster if n not in running]
        launched: dict[Node, subprocess.Popen] = {}
        since = {n: _log_sizes(n.dir) for n in missing}
        if missing:
            java = find_java()  # before the fetch: no Java, no point fetching the jars
            jars = classpath_of(ensure_jars(settings))
            ids: list[str] = []  # formatted lazily: only a node without storage needs the id

            def cluster_id() -> str:
                if not ids:
                    ids.append(_cluster_id_for(settings, cluster))
                return ids[0]

            _cluster_id_for(settings, cluster)  # refuse another layout's storage before touching anything
            options = {n: _prepare(n, cluster, java, jars, cluster_id, user, tls) for n in missing}
            for node in missing:
                launched[node] = _launch(node, java, jars, options[node], int(settings.broker_heap_mb))

        def alive() -> bool:
            return all(_alive(pid) for pid in running.values()) and all(p.poll() is None for p in launched.values())

        try:
            # each node restarted answers on its own port: the cluster's metadata may still list a node
            # that died a moment ago, until the controller fences it
            deadline = time.monotonic() + wait_s
            answered = all(_wait(f"127.0.0.1:{n.port}", max(1.0, deadline - time.monotonic()), alive, client=client)
                           for n in launched) and _wait(bootstrap, max(1.0, deadline - time.monotonic()), alive,
                                                        brokers=len(cluster), client=client)
        except BrokerError:
            answered = None
        if answered:
            return
        dead = [n.name + (f" (exit {launched[n].returncode})" if n in launched else "")
                for n in cluster if (n in launched and launched[n].poll() is not None)
                or (n in running and not _alive(running[n]))]
        for node, proc in launched.items():
            _terminate(proc.pid, 10)
            (node.dir / _PID_FILE).unlink(missing_ok=True)
        if answered is None and not launched:
            raise BrokerError(f"the broker of {settings.data_dir} is running but does not answer at {bootstrap}; "
                              "stop it (`scanledger broker stop`) and start again\n" + _tails(cluster))
        what = f"{', '.join(dead)} exited while starting" if dead else \
            f"the local Kafka broker did not answer at {bootstrap} within {wait_s:.0f}s and was stopped"
        raise BrokerError(what + "\n" + _tails(cluster, since))


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
    """Stop this data dir's broker nodes (all at once: a cluster stopped one by one would wait on a
    quorum that is leaving); False if none was running."""
    pids = {node: pid for node in nodes(settings) if (pid := _running_pid(node)) is not None}
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for node, pid in pids.items():
        _terminate(pid, max(0.5, deadline - time.monotonic()))
        (node.dir / _PID_FILE).unlink(missing_ok=True)
    return bool(pids)


def kill_node(settings, node_id: int, sig: int = signal.SIGKILL) -> int | None:
    """Signal one node of the cluster (SIGKILL: a crash) and wait until it is gone; its pid, or None if it
    was not running. `start` brings it back."""
    node = nodes(settings)[node_id - 1]
    pid = _running_pid(node)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def status(settings) -> dict:
    cluster = nodes(settings)
    pids = [_running_pid(n) for n in cluster]
    bootstrap = settings.bootstrap_servers
    hosts = _hosts(bootstrap)
    answers = bool(hosts) and any(_tcp_open(h, p) for h, p in hosts) and _answers(bootstrap, 3.0,
                                                                                   client=_probe_config(settings))
    return {"running": all(p is not None for p in pids), "pid": pids[0], "bootstrap": bootstrap,
            "data_dir": str(settings.data_dir), "answers": answers,
            "nodes": [{"node": n.id, "port": n.port, "pid": pid, "dir": str(n.dir)}
                      for n, pid in zip(cluster, pids, strict=True)]}
