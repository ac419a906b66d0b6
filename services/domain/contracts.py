"""Commands and events: one versioned type name and one pydantic model of `data` each.

The JSON Schemas in docs/schemas are generated from these models (`scanledger schemas`).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag

from services.domain.vocabulary import FindingStatus as ViolationStatus
from services.domain.vocabulary import Severity, TerminalStatus


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the snapshot a scan request carries: enough to explain and replay the scan alone ---

class PolicySnapshot(Contract):
    id: str
    name: str
    rules: list[dict[str, Any]]  # the resolved active rules, as services.domain.rules.Rule dumps


class UploadSnapshot(Contract):
    id: str
    filename: str | None = None
    blob: str  # content hash of the Arrow IPC form in the blob store
    record_count: int
    columns: list[str]
    pii_findings: list[dict[str, Any]] = []


class MappingSnapshot(Contract):
    id: str
    mapping: dict[str, str]
    temporal_scale: str | None = None


class ContainerRef(Contract):
    id: int
    name: str
    container_type: Literal["file", "table"]
    datastore_id: int


class DatastoreRef(Contract):
    id: int
    name: str
    type: Literal["local_dir", "sqlite"]
    path: str  # as registered (relative to the workspace's datastore root); before resolved_path: the resolved one
    resolved_path: str | None = None  # resolved, inside the configured datastore root: what the evaluators read
    dialect: dict[str, Any] | None = None  # how its CSV files are written, as registered (None: sniffed)


class Target(Contract):
    """One container a monitor scan or a sync reads: a unit of work of its own."""
    container: ContainerRef
    datastore: DatastoreRef
    monitors: list[dict[str, Any]] = []  # the enabled monitors, as services.domain.monitors.Monitor dumps


class ConfigVersion(Contract):
    """One piece of configuration a scan was requested with, at the version it had then: the offset of
    its latest change on the config topic (ConfigChanged), so an auditor reads exactly what was in force."""
    table: str
    key: str
    version: int


class _ScanRequestBase(Contract):
    scan_id: str
    operation_id: int | None = None  # the integer run id of the operations API (seed 003)
    kind: str
    workspace_id: str
    requested_by: str
    requested_at: str
    config_versions: list[ConfigVersion] | None = None  # None: requested before config was on the log


class ComplianceScanRequest(_ScanRequestBase):
    """A compliance scan: a policy's rules over an upload, read through a mapping."""
    kind: Literal["compliance"] = "compliance"  # the kind of a request that names none
    policy: PolicySnapshot
    upload: UploadSnapshot
    mapping: MappingSnapshot
    audit_id: str | None = None
    audit_name: str | None = None
    rerun_of: str | None = None


class _TargetsRequest(_ScanRequestBase):
    targets: list[Target]
    datastore: DatastoreRef | None = None  # the run's datastore in the Activity list, when it covers just one
    rerun_of: str | None = None


class MonitorScanRequest(_TargetsRequest):
    """A monitor scan: every enabled monitor of a workspace, one target per asset."""
    kind: Literal["monitor"]


class CatalogSyncRequest(_TargetsRequest):
    """A sync (catalog): every container of one datastore, profiled."""
    kind: Literal["catalog"]


class ConnectorSnapshot(Contract):
    """A connector as the scan reads it: its config as registered (references to secrets, never secrets)."""
    id: str
    name: str
    type: Literal["local_dir", "s3", "sqlite"]
    config: dict[str, Any]


class SensitiveScanOptions(Contract):
    max_files: int | None = None
    max_workers: int
    file_types: list[str] | None = None
    prefixes: list[str] = []
    timeout_minutes: int = 120
    coverage_target: float = 1.0
    coverage_strategy: Literal["best_effort", "strict"] = "best_effort"
    llm_assist: bool = False  # low-confidence findings get a second opinion (services.domain.llm_review)
    # byoc: the chunks wait for workers the customer runs (scanledger scan-worker), not the in-cluster evaluators
    execution: Literal["in_cluster", "byoc"] = "in_cluster"
    # findings kept per file and detector (the rest are counted in the file's occurrences); None: all of them
    max_findings_per_file: int | None = None
    detectors: list[str] | None = None  # the detectors run, by name or family (services.domain.detectors); None: all


class SensitiveScanRequest(_ScanRequestBase):
    """A sensitive-data scan (seed 004): every file of some connectors, in chunks, through the detectors."""
    kind: Literal["sensitive"]
    type: Literal["full", "incremental"] = "full"
    connectors: list[ConnectorSnapshot]
    options: SensitiveScanOptions
    # an incremental scan's watermark, per connector: the id of its last completed scan, and (in the blob
    # store, JSON {connector id: {file: version}}) the versions of the files that scan covered
    baseline_scans: dict[str, str] = {}
    baseline_blob: str | None = None
    rerun_of: str | None = None  # a rerun (seed 003) of this scan id: the same snapshot, a new scan
    # the workspace's detection settings when the scan was requested (services/stores/detector_store.py):
    # its own detectors' specs {name, pattern, checksum, confidence} and its allow-list's keys
    custom_detectors: list[dict] = []
    allowlist: list[str] = []


# The request of each scan kind (services.domain.kinds has one kind per entry).
SCAN_REQUESTS: dict[str, type[_ScanRequestBase]] = {
    "compliance": ComplianceScanRequest, "monitor": MonitorScanRequest, "catalog": CatalogSyncRequest,
    "sensitive": SensitiveScanRequest}


def _kind(value: Any) -> str:
    kind = value.get("kind", "compliance") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else ""


AnyScanRequest = Annotated[
    Annotated[ComplianceScanRequest, Tag("compliance")] | Annotated[MonitorScanRequest, Tag("monitor")]
    | Annotated[CatalogSyncRequest, Tag("catalog")] | Annotated[SensitiveScanRequest, Tag("sensitive")],
    Discriminator(_kind)]


class ScanRequest(RootModel[AnyScanRequest]):
    """What a scan will use, snapshotted when it is requested, so it can be explained and replayed alone:
    one model per kind, told apart by `kind` (a request without one is a compliance scan)."""


# --- commands (topic: commands, key: scan id) ---

class RunScan(ScanRequest):
    """A scan request as a command."""


class ScanCommand(Contract):
    """AbortScan, ResumeScan, DeleteScan: an operator acting on a run."""
    scan_id: str
    requested_by: str


class ResumeScan(ScanCommand):
    # The units the read models showed completed when the resume was asked. Their results are on the
    # log, though the coordinator may not have read them yet (it reads commands and scan events apart):
    # it waits for them instead of running them again.
    reported_units: list[str] = Field(default_factory=list)


class ChangeViolationStatus(Contract):
    scan_id: str
    violation_id: str
    severity: Severity
    status: ViolationStatus
    changed_by: str


# --- scan lifecycle events (topic: scan-events, key: scan id) ---

class UnitPlan(Contract):
    unit_id: str
    index: int
    blob: str
    record_count: int
    counted_records: int  # rows this unit adds to the scan's record_count (0 for secondary rule groups)
    partition_key: list[str]
    rule_ids: list[str]  # rule ids, or monitor ids of a monitor scan
    container: ContainerRef | None = None
    # a sensitive scan's chunk: `blob` holds its ScanFile entries (JSON, in order), `record_count` their number,
    # and these their first and last position in the scan's enumeration order
    start_index: int | None = None
    end_index: int | None = None
    # a compliance unit: `blob` is its upload's table and `rows` the content hash of the unit's row numbers in
    # it (an Arrow IPC file of one int64 column, `__row`); `numbers` the columns the whole upload reads as
    # numbers (services.domain.planning). Planned before these were: `blob` is the unit's own table.
    rows: str | None = None
    numbers: list[str] | None = None


class ScanFile(Contract):
    """One enumerated file of a sensitive scan."""
    connector_id: str
    name: str
    size: int | None = None
    version: str  # changes whenever the content may have (ETag, else size and mtime)
    unchanged: bool = False  # an incremental scan: the same version as its baseline (skipped, not read)


class ConnectorListing(Contract):
    connector_id: str
    status: Literal["listed", "failed"]
    files: int = 0
    error: str | None = None


class ScanEnumerated(Contract):
    """What a sensitive scan's enumeration found, before its chunks are sent (the coverage's denominator)."""
    scan_id: str
    status: Literal["complete", "partial", "failed"]
    total_enumerated: int
    connectors: list[ConnectorListing]
    workers_requested: int
    enumerated_at: str


class ScanStarted(Contract):
    scan_id: str
    units: list[UnitPlan]
    record_total: int
    rules_total: int
    started_at: str


class MonitorOutcome(Contract):
    monitor_id: str
    monitor_name: str
    stage: Literal["pending", "running", "completed", "failed"]
    duration_ms: int | None = None
    error: str | None = None
    anomalies: int = 0


class UnitProgressed(Contract):
    scan_id: str
    unit_id: str
    rules_done: int
    rules_total: int
    attempt: int = 0
    monitor: MonitorOutcome | None = None  # the monitor that just finished, in a monitor scan


class UnitCompleted(Contract):
    scan_id: str
    unit_id: str
    record_count: int  # the unit's counted_records
    rules_done: int
    attempt: int = 0
    violations_by_rule: dict[str, int]
    violations_by_severity: dict[str, int]
    monitors: list[MonitorOutcome] = []
    profile: list[dict[str, Any]] = []  # a sync's finding: the container's columns and row count
    files: dict[str, int] | None = None  # a sensitive chunk: files scanned, skipped and failed
    # a compliance unit: per rule id, {count, rows} of the records the rule could not judge (left out of it)
    unevaluated: dict[str, dict[str, Any]] = {}


class UnitFailed(Contract):
    scan_id: str
    unit_id: str
    error: str
    attempt: int = 0
    record_count: int = 0  # rows read before it failed: an asset whose other monitors ran over them
    violations_by_rule: dict[str, int] = {}
    violations_by_severity: dict[str, int] = {}
    monitors: list[MonitorOutcome] = []
    files: dict[str, int] | None = None  # a sensitive chunk: files scanned, skipped and failed


class FileOutcome(Contract):
    """One file of a sensitive scan's chunk: scanned, skipped (with the reason) or failed (with the reason)."""
    scan_id: str
    unit_id: str
    attempt: int = 0
    connector_id: str
    name: str
    index: int  # its position in the scan's enumeration
    status: Literal["scanned", "skipped", "failed"]
    reason: str | None = None
    size: int = 0
    version: str
    findings: int = 0  # the findings reported (at most max_findings_per_file per detector)
    occurrences: int | None = None  # every value found, over the cap too (None: an event from before the cap)


class ScanFinished(Contract):
    scan_id: str
    status: TerminalStatus
    record_count: int
    rules_processed: int
    violation_count: int
    violations_by_rule: dict[str, int]
    violations_by_severity: dict[str, int]
    compliance_score: float
    error: str | None = None
    finished_at: str
    unevaluated: dict[str, dict[str, Any]] = {}  # per rule id, {count, rows}: summed over the scan's units


class ScanAborted(Contract):
    scan_id: str
    aborted_at: str
    aborted_by: str
    attempt: int  # work of this attempt or earlier stops; a resume's later attempt runs
    record_count: int
    violation_count: int  # counted by the units that reported; violations of cut-short units stay too
    units_completed: int


class ScanResumed(Contract):
    scan_id: str
    attempt: int
    unit_ids: list[str]  # the units sent again: every one not completed
    resumed_at: str
    resumed_by: str


class ScanDeleted(Contract):
    scan_id: str
    deleted_at: str
    deleted_by: str


class ViolationStatusChanged(Contract):
    scan_id: str
    violation_id: str
    status: ViolationStatus
    previous_status: ViolationStatus
    compliance_score: float
    changed_by: str
    changed_at: str


# --- work (topic: work, key: unit id) ---

class WorkUnit(Contract):
    scan_id: str
    unit_id: str
    index: int
    kind: Literal["compliance", "monitor", "catalog", "sensitive"] = "compliance"
    attempt: int = 0  # 0 for the first run of a unit, then one more per resume
    blob: str | None = None
    rows: str | None = None  # a compliance unit's row numbers in `blob`, its upload (UnitPlan)
    numbers: list[str] | None = None
    record_count: int
    counted_records: int
    rules: list[dict[str, Any]] = []
    mapping: dict[str, str] = {}
    temporal_scale: str | None = None
    target: Target | None = None
    connectors: list[ConnectorSnapshot] | None = None  # a sensitive chunk: its scan's connectors (files in `blob`)
    start_index: int | None = None
    deadline: str | None = None  # a sensitive chunk: files not reached by then are skipped (timeout_minutes)
    llm_assist: bool = False  # a sensitive chunk: its scan asked for LLM Assist
    max_findings_per_file: int | None = None  # a sensitive chunk: findings kept per file and detector
    detectors: list[str] | None = None  # a sensitive chunk: the detectors its scan chose (None: all)
    custom_detectors: list[dict] = []  # a sensitive chunk: its workspace's own detectors (SensitiveScanRequest)
    allowlist: list[str] = []  # a sensitive chunk: its workspace's allow-list keys
    # how a compliance unit's violations are named (services.domain.evaluation.violation_ids): fixed when the
    # scan is planned, so a unit run again, after a crash or by a newer worker, names them as its first run did
    violation_ids: Literal["uuid5", "clustered"] = "uuid5"


# --- findings (topic: violations, key: scan id) ---

class ViolationDetected(Contract):
    violation_id: str
    scan_id: str
    unit_id: str
    rule_id: str
    rule_name: str
    rule_type: str
    severity: Severity
    account: str | None
    record_index: int | None
    record_key: str
    value: str | None
    window: str | None
    signature: str  # rule_id:account (rule_id:#record without an account), or monitor_id:container_id
    # the record's mapped fields (account, transaction_id, amount, timestamp: those mapped); None for a group's
    record: dict[str, str] | None = None
    container_id: int | None = None  # the asset an anomaly was found on
    observed: dict[str, Any] | None = None  # what the monitor measured


# --- findings of sensitive-data scans (topic: findings, key: scan id) ---

class FindingDetected(Contract):
    """A sensitive value in a file: where, what, how sure, masked (never the raw value).

    `finding_id` is a function of the connector, file, location, detector and offset alone, so a
    retried chunk, a restarted worker or a replay re-emits the same finding, counted once.

    LLM Assist (a scan with llm_assist): a finding below the confidence threshold carries `llm_verdict`
    (confirmed, rejected, or not_reviewed when the endpoint gave no usable answer), the model's
    `llm_confidence` and `llm_model`, and `detector_confidence`; `confidence` is then the adjusted one
    (services.domain.llm_review.adjusted_confidence). A rejected finding stays a finding. Without a
    review these four are null and `confidence` is the detector's."""
    finding_id: str
    scan_id: str
    unit_id: str
    connector_id: str
    file: str
    row: int | None = None
    column: str | None = None
    line: int | None = None
    start: int
    end: int
    detector: str
    family: str
    confidence: float
    masked: str
    llm_verdict: Literal["confirmed", "rejected", "not_reviewed"] | None = None
    llm_confidence: float | None = None
    llm_model: str | None = None
    detector_confidence: float | None = None


# --- configuration (topic: config, key: table/key) ---

class ConfigRow(Contract):
    """A row of configuration as it is after a change (row None: deleted). Tokens appear by their hash
    only, connectors with their credential references: never a secret."""
    table: str
    key: str
    row: dict[str, Any] | None


class ConfigChanged(Contract):
    """One change to the configuration (one transaction's rows, all or none), written to the log before
    the change is answered; the database rows follow it (services.stores.config_log). Its offset on
    the config topic is the version of each row it carries."""
    changes: list[ConfigRow]


def _t(name: str) -> str:
    return f"scanledger.{name}.v1"


RUN_SCAN = _t("command.run-scan")
ABORT_SCAN = _t("command.abort-scan")
RESUME_SCAN = _t("command.resume-scan")
DELETE_SCAN = _t("command.delete-scan")
CHANGE_VIOLATION_STATUS = _t("command.change-violation-status")
SCAN_REQUESTED = _t("scan.requested")
SCAN_STARTED = _t("scan.started")
UNIT_PROGRESSED = _t("scan.unit.progressed")
UNIT_COMPLETED = _t("scan.unit.completed")
UNIT_FAILED = _t("scan.unit.failed")
SCAN_FINISHED = _t("scan.finished")
SCAN_ABORTED = _t("scan.aborted")
SCAN_RESUMED = _t("scan.resumed")
SCAN_DELETED = _t("scan.deleted")
VIOLATION_STATUS_CHANGED = _t("violation.status-changed")
SCAN_ENUMERATED = _t("scan.enumerated")
FILE_OUTCOME = _t("scan.file.outcome")
FINDING_DETECTED = _t("finding.detected")
WORK_UNIT = _t("work.unit")
CHUNK_OFFERED = _t("scan.chunk.offered")  # a BYOC scan's chunk, waiting on scan events for an external worker
VIOLATION_DETECTED = _t("violation.detected")
CONFIG_CHANGED = _t("config.changed")

MODELS: dict[str, type[BaseModel]] = {
    RUN_SCAN: RunScan,
    ABORT_SCAN: ScanCommand,
    RESUME_SCAN: ResumeScan,
    DELETE_SCAN: ScanCommand,
    CHANGE_VIOLATION_STATUS: ChangeViolationStatus,
    SCAN_REQUESTED: ScanRequest,
    SCAN_STARTED: ScanStarted,
    UNIT_PROGRESSED: UnitProgressed,
    UNIT_COMPLETED: UnitCompleted,
    UNIT_FAILED: UnitFailed,
    SCAN_FINISHED: ScanFinished,
    SCAN_ABORTED: ScanAborted,
    SCAN_RESUMED: ScanResumed,
    SCAN_DELETED: ScanDeleted,
    VIOLATION_STATUS_CHANGED: ViolationStatusChanged,
    SCAN_ENUMERATED: ScanEnumerated,
    FILE_OUTCOME: FileOutcome,
    WORK_UNIT: WorkUnit,
    CHUNK_OFFERED: WorkUnit,
    VIOLATION_DETECTED: ViolationDetected,
    FINDING_DETECTED: FindingDetected,
    CONFIG_CHANGED: ConfigChanged,
}


SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # the dialect pydantic writes


def schema_id(type_: str) -> str:
    return f"urn:scanledger:schema:{type_}"


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per message type's `data`, for docs/schemas: what a consumer validates with.

    The models forbid unknown fields, so what we write is exactly the contract; the published
    schemas leave `additionalProperties: false` out, so a consumer holding this version's schema
    still accepts an event that gained an optional field (the compatibility policy of
    docs/asyncapi.yaml). Each names itself ($id) and its dialect ($schema)."""
    return {type_: {"$schema": SCHEMA_DIALECT, "$id": schema_id(type_), **_open(model.model_json_schema())}
            for type_, model in MODELS.items()}


def _open(schema: Any) -> Any:
    """The schema without `additionalProperties: false` anywhere (a dict's value schema is kept)."""
    if isinstance(schema, dict):
        return {k: _open(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
    if isinstance(schema, list):
        return [_open(v) for v in schema]
    return schema
