"""Process settings, read once from the environment with embedded defaults.

Every process (api, worker, projector, up) builds one `Settings` from the same variables,
so a user only ever sets them in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _path(name: str) -> Path | None:
    raw = (os.environ.get(name) or "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased: what an endpoint allowlist compares."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class Topics:
    prefix: str = "scanledger"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def scan_events(self) -> str:
        return f"{self.prefix}.scan-events"

    @property
    def work(self) -> str:
        return f"{self.prefix}.work"

    @property
    def violations(self) -> str:
        return f"{self.prefix}.violations"

    @property
    def findings(self) -> str:
        return f"{self.prefix}.findings"

    @property
    def config(self) -> str:
        return f"{self.prefix}.config"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter"


PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of the project authenticates and encrypts: the names and values of
    librdkafka's own settings (security.protocol, sasl.mechanism, ssl.ca.location, ...), upper-cased
    with a KAFKA_ prefix. services/adapters/kafka_client.py maps them for confluent-kafka,
    streams/credentials.py for Faust (aiokafka)."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "PLAIN"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # TLS: the CA bundle (None: the system's trust store), and a client certificate and key for mTLS
    ca_location: str | None = None
    certificate_location: str | None = None
    key_location: str | None = None
    key_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> KafkaSecurity:
        def get(name: str) -> str | None:
            return (os.environ.get(name) or "").strip() or None

        return cls(protocol=(get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
                   mechanism=(get("KAFKA_SASL_MECHANISM") or "PLAIN").upper(),
                   username=get("KAFKA_SASL_USERNAME"), password=os.environ.get("KAFKA_SASL_PASSWORD") or None,
                   ca_location=get("KAFKA_SSL_CA_LOCATION"),
                   certificate_location=get("KAFKA_SSL_CERTIFICATE_LOCATION"),
                   key_location=get("KAFKA_SSL_KEY_LOCATION"),
                   key_password=os.environ.get("KAFKA_SSL_KEY_PASSWORD") or None)

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def problem(self) -> str | None:
        """What is wrong with these settings, naming the variable to fix; None when they can be used."""
        if self.protocol not in PROTOCOLS:
            return f"KAFKA_SECURITY_PROTOCOL={self.protocol}: expected one of {', '.join(PROTOCOLS)}"
        if self.sasl:
            if self.mechanism not in MECHANISMS:
                return f"KAFKA_SASL_MECHANISM={self.mechanism}: expected one of {', '.join(MECHANISMS)}"
            for name, value in (("KAFKA_SASL_USERNAME", self.username), ("KAFKA_SASL_PASSWORD", self.password)):
                if not value:
                    return f"KAFKA_SECURITY_PROTOCOL={self.protocol} needs {name}: the SASL user's {name[11:].lower()}"
        elif self.username or self.password:
            return (f"KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but KAFKA_SECURITY_PROTOCOL is {self.protocol}:"
                    " set it to SASL_PLAINTEXT or SASL_SSL (or unset them)")
        files = (("KAFKA_SSL_CA_LOCATION", self.ca_location), ("KAFKA_SSL_CERTIFICATE_LOCATION",
                 self.certificate_location), ("KAFKA_SSL_KEY_LOCATION", self.key_location))
        if not self.tls:
            given = [name for name, value in files if value]
            return (f"{given[0]} is set but KAFKA_SECURITY_PROTOCOL is {self.protocol}: set it to SSL or SASL_SSL"
                    " (or unset it)") if given else None
        for name, value in files:
            if value and not Path(value).is_file():
                return f"{name}={value}: no such file"
        if bool(self.certificate_location) != bool(self.key_location):
            return ("a client certificate needs its key: set both KAFKA_SSL_CERTIFICATE_LOCATION and"
                    " KAFKA_SSL_KEY_LOCATION (or neither)")
        return None


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".scanledger")
    # None means: run (or use) the project's own local broker on broker_port.
    kafka_bootstrap: str | None = None
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    broker_port: int = 9092
    # Nodes of the local broker: 1, or a cluster (each node a combined broker and controller; node i
    # listens on broker_port + 2i and its controller on the port after).
    broker_nodes: int = 1
    database_url: str | None = None
    topics: Topics = field(default_factory=Topics)
    commands_partitions: int = 6
    events_partitions: int = 6
    work_partitions: int = 12
    violations_partitions: int = 12
    dead_letter_partitions: int = 3
    # None: as many replicas as the local cluster has nodes, up to 3 (1 for any other Kafka: set it there).
    replication_factor: int | None = None
    # None: 2 once topics have 3 or more replicas (one broker may be down and writes go on), else 1.
    min_insync_replicas: int | None = None
    port: int = 8000
    # API processes sharing the port (SO_REUSEPORT-free: uvicorn's workers on one socket); reads scale
    # with cores, every process is stateless over the same database
    api_processes: int = 1
    admin_token: str | None = None
    max_upload_records: int = 5_000_000
    # Request bodies: JSON bodies above max_body_bytes and uploads above max_upload_bytes are a 413.
    max_body_bytes: int = 4 * 1024 * 1024
    max_upload_bytes: int = 512 * 1024 * 1024
    # A datastore asset bigger than this is a failed read, not an out-of-memory worker.
    max_asset_records: int = 50_000_000
    # Records per unit of work for a compliance scan; units are capped at work_partitions.
    unit_records: int = 100_000
    # How long POST /api/scan/run waits for the scan to finish before answering "running".
    scan_sync_wait_s: float = 5.0
    # How long the API waits for the broker to take a command before it answers 503.
    command_timeout_s: float = 5.0
    cache_dir: Path = Path.home() / ".cache" / "scanledger"
    # Where the local broker's pinned jars are fetched from (cli/localbroker/jars.py): Maven Central or a mirror.
    maven_repo: str = "https://repo1.maven.org/maven2"
    broker_heap_mb: int = 512
    # The local broker's certificate (PEM, for 127.0.0.1) and its unencrypted PKCS#8 key: its client listener
    # serves TLS with KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL (cli/localbroker/tls.py).
    broker_ssl_cert: Path | None = None
    broker_ssl_key: Path | None = None
    # Datastore paths must resolve inside this directory (a path that escapes it is a 400).
    datastore_root: Path = Path(".")
    # Each workspace reaches only <datastore_root>/<workspace_id>/ (services/adapters/connectors/confinement.py).
    datastore_root_per_workspace: bool = False
    # Connectors' secret files (services/adapters/connectors/s3.py): None means no secret files; never a datastore.
    secrets_dir: Path | None = None
    # Environment variables a connector may name for its credentials start with this.
    secrets_env_prefix: str = "SCANLEDGER_SECRET_"
    # S3 calls: connect and read timeouts, attempts (a down endpoint is a clear failure, not a hang).
    s3_connect_timeout_s: float = 5.0
    s3_read_timeout_s: float = 30.0
    s3_max_attempts: int = 3
    # The only S3-compatible endpoints a connector may name (origins: scheme://host[:port]); AWS's own
    # endpoints need none. Anything else could make the server call an internal address for a user.
    s3_endpoints: tuple[str, ...] = ()
    # How long an Idempotency-Key is remembered (a retry after that runs again).
    idempotency_ttl_s: float = 86_400.0
    # A worker with lag that consumes nothing for this long exits (its supervisor restarts it).
    stall_s: float = 30.0
    # The coordinator offers a unit's work again after this long without a sign of life.
    unit_reoffer_s: float = 60.0
    # BYOC scans (api/sensitive/byoc_routes.py): an external worker's hold on a chunk lasts this long after its last
    # report; the image and the API's own address that GET …/deployment-config gives the workers.
    worker_lease_s: float = 30.0
    worker_image: str = "scanledger/scan-worker:0.1.0"
    public_url: str | None = None
    # LLM Assist (llm_assist: true): an OpenAI-compatible chat-completions endpoint (its base URL: requests go
    # to {llm_base_url}/chat/completions), the model, and the NAME of the environment variable holding its API
    # key (the key itself is read when a request is sent and kept nowhere). No base URL or model: a 422.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key_env: str | None = None
    # Findings with a detector confidence below this get a second opinion; this many per request.
    llm_confidence_threshold: float = 0.9
    llm_batch_size: int = 20
    llm_timeout_s: float = 30.0
    llm_max_attempts: int = 3
    # Where blobs live (uploads, their Arrow tables, unit files, chunk file lists): None, a directory in the data dir
    # (blob_dir); "s3://bucket[/prefix]", a bucket every host reads (services/adapters/blobstore_s3.py), through a
    # local cache (blob_cache_dir). Its endpoint and keys: the AWS chain (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    blob_url: str | None = None

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        data_dir = Path(os.environ.get("SCANLEDGER_DATA_DIR") or ".scanledger").resolve()
        settings = cls(
            data_dir=data_dir,
            kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            kafka_security=KafkaSecurity.from_env(),
            broker_port=_int("SCANLEDGER_BROKER_PORT", 9092),
            broker_nodes=_int("SCANLEDGER_BROKER_NODES", 1),
            database_url=os.environ.get("SCANLEDGER_DATABASE_URL") or None,
            topics=Topics(os.environ.get("SCANLEDGER_TOPIC_PREFIX") or "scanledger"),
            commands_partitions=_int("SCANLEDGER_COMMANDS_PARTITIONS", 6),
            events_partitions=_int("SCANLEDGER_EVENTS_PARTITIONS", 6),
            work_partitions=_int("SCANLEDGER_WORK_PARTITIONS", 12),
            violations_partitions=_int("SCANLEDGER_VIOLATIONS_PARTITIONS", 12),
            dead_letter_partitions=_int("SCANLEDGER_DEAD_LETTER_PARTITIONS", 3),
            replication_factor=_int("SCANLEDGER_REPLICATION_FACTOR", 0) or None,
            min_insync_replicas=_int("SCANLEDGER_MIN_INSYNC_REPLICAS", 0) or None,
            port=_int("SCANLEDGER_PORT", 8000),
            api_processes=max(1, _int("SCANLEDGER_API_PROCESSES", 1)),
            admin_token=os.environ.get("SCANLEDGER_ADMIN_TOKEN") or None,
            max_upload_records=_int("SCANLEDGER_MAX_UPLOAD_RECORDS", 5_000_000),
            max_body_bytes=_int("SCANLEDGER_MAX_BODY_BYTES", 4 * 1024 * 1024),
            max_upload_bytes=_int("SCANLEDGER_MAX_UPLOAD_BYTES", 512 * 1024 * 1024),
            max_asset_records=_int("SCANLEDGER_MAX_ASSET_RECORDS", 50_000_000),
            unit_records=_int("SCANLEDGER_UNIT_RECORDS", 100_000),
            scan_sync_wait_s=_float("SCANLEDGER_SCAN_SYNC_WAIT", 5.0),
            command_timeout_s=_float("SCANLEDGER_COMMAND_TIMEOUT", 5.0),
            cache_dir=Path(os.environ.get("SCANLEDGER_CACHE_DIR") or Path.home() / ".cache" / "scanledger"),
            maven_repo=(os.environ.get("SCANLEDGER_MAVEN_REPO") or "").strip() or "https://repo1.maven.org/maven2",
            broker_heap_mb=_int("SCANLEDGER_BROKER_HEAP_MB", 512),
            broker_ssl_cert=_path("SCANLEDGER_BROKER_SSL_CERT"),
            broker_ssl_key=_path("SCANLEDGER_BROKER_SSL_KEY"),
            datastore_root=Path(os.environ.get("SCANLEDGER_DATASTORE_ROOT") or ".").resolve(),
            datastore_root_per_workspace=os.environ.get("SCANLEDGER_DATASTORE_ROOT_PER_WORKSPACE", "").lower()
            in ("1", "true", "yes"),
            secrets_dir=Path(os.environ["SCANLEDGER_SECRETS_DIR"]).resolve()
            if os.environ.get("SCANLEDGER_SECRETS_DIR") else None,
            secrets_env_prefix=os.environ.get("SCANLEDGER_SECRETS_ENV_PREFIX") or "SCANLEDGER_SECRET_",
            s3_connect_timeout_s=_float("SCANLEDGER_S3_CONNECT_TIMEOUT", 5.0),
            s3_read_timeout_s=_float("SCANLEDGER_S3_READ_TIMEOUT", 30.0),
            s3_max_attempts=_int("SCANLEDGER_S3_MAX_ATTEMPTS", 3),
            s3_endpoints=tuple(origin(e) for e in os.environ.get("SCANLEDGER_S3_ENDPOINTS", "").split(",")
                               if e.strip()),
            idempotency_ttl_s=_float("SCANLEDGER_IDEMPOTENCY_TTL_SECONDS", 86_400.0),
            stall_s=_float("SCANLEDGER_STALL_SECONDS", 30.0),
            unit_reoffer_s=_float("SCANLEDGER_UNIT_REOFFER_SECONDS", 60.0),
            worker_lease_s=_float("SCANLEDGER_WORKER_LEASE_SECONDS", 30.0),
            worker_image=os.environ.get("SCANLEDGER_WORKER_IMAGE") or "scanledger/scan-worker:0.1.0",
            public_url=(os.environ.get("SCANLEDGER_PUBLIC_URL") or "").strip().rstrip("/") or None,
            llm_base_url=(os.environ.get("SCANLEDGER_LLM_BASE_URL") or "").strip().rstrip("/") or None,
            llm_model=(os.environ.get("SCANLEDGER_LLM_MODEL") or "").strip() or None,
            llm_api_key_env=(os.environ.get("SCANLEDGER_LLM_API_KEY_ENV") or "").strip() or None,
            llm_confidence_threshold=_float("SCANLEDGER_LLM_CONFIDENCE_THRESHOLD", 0.9),
            llm_batch_size=_int("SCANLEDGER_LLM_BATCH_SIZE", 20),
            llm_timeout_s=_float("SCANLEDGER_LLM_TIMEOUT", 30.0),
            llm_max_attempts=_int("SCANLEDGER_LLM_MAX_ATTEMPTS", 3),
            blob_url=(os.environ.get("SCANLEDGER_BLOB_URL") or "").strip() or None,
        )
        return replace(settings, **overrides) if overrides else settings

    def llm_unconfigured(self) -> str | None:
        """Why LLM Assist cannot run with these settings (what to set), or None when it can."""
        missing = [name for name, value in (("SCANLEDGER_LLM_BASE_URL", self.llm_base_url),
                                            ("SCANLEDGER_LLM_MODEL", self.llm_model)) if not value]
        if missing:
            return (f"LLM Assist needs an OpenAI-compatible chat-completions endpoint: set {' and '.join(missing)}"
                    " (e.g. SCANLEDGER_LLM_BASE_URL=https://api.openai.com/v1, SCANLEDGER_LLM_MODEL=gpt-4o-mini)"
                    " and, if it needs a key, SCANLEDGER_LLM_API_KEY_ENV to the name of the environment variable"
                    " holding it, for the API and worker processes; or send llm_assist false")
        if urlsplit(self.llm_base_url).scheme not in ("http", "https"):
            return "LLM Assist: SCANLEDGER_LLM_BASE_URL must be an http(s) URL (e.g. https://api.openai.com/v1)"
        if self.llm_api_key_env and not os.environ.get(self.llm_api_key_env):
            return (f"LLM Assist: SCANLEDGER_LLM_API_KEY_ENV names {self.llm_api_key_env}, which is not set:"
                    " set it to the endpoint's API key (or unset SCANLEDGER_LLM_API_KEY_ENV for an endpoint"
                    " without one)")
        return None

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or ",".join(f"127.0.0.1:{self.broker_port + 2 * i}"
                                                for i in range(self.broker_nodes))

    @property
    def replicas(self) -> int:
        """The replication factor of the topics the project creates."""
        if self.replication_factor:
            return self.replication_factor
        return min(3, self.broker_nodes) if self.uses_local_broker else 1

    @property
    def min_insync(self) -> int:
        """min.insync.replicas of those topics: with acks=all a write needs this many replicas."""
        return self.min_insync_replicas or (2 if self.replicas >= 3 else 1)

    @property
    def uses_local_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'scanledger.db'}"

    @property
    def streams_group(self) -> str:
        return f"{self.topics.prefix}-streams"

    @property
    def table_changelog(self) -> str:
        """The coordinator table's changelog (Faust names it `<app id>-<table>-changelog`)."""
        return f"{self.streams_group}-scans-changelog"

    @property
    def projector_group(self) -> str:
        return f"{self.topics.prefix}-projector"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def blob_cache_dir(self) -> Path:
        """The blobs this host read from (or wrote to) an S3 blob store: content-addressed, never stale."""
        return self.data_dir / "blob-cache"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "kafka"
