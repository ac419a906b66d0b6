"""Commands and events: one versioned type name and one pydantic model of `data` each.

The JSON Schemas in docs/schemas are generated from these models (`scanledger schemas`).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["queued", "running", "completed", "partial_failure", "failed", "aborted"]
ViolationStatus = Literal["open", "resolved", "dismissed"]
Severity = Literal["low", "medium", "high", "critical"]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the snapshot a scan request carries: enough to explain and replay the scan alone ---

class PolicySnapshot(Contract):
    id: str
    name: str
    rules: list[dict[str, Any]]  # the resolved active rules, as services.rules.Rule dumps


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


class ScanRequest(Contract):
    scan_id: str
    kind: Literal["compliance"] = "compliance"
    workspace_id: str
    requested_by: str
    requested_at: str
    policy: PolicySnapshot
    upload: UploadSnapshot
    mapping: MappingSnapshot
    audit_id: str | None = None
    audit_name: str | None = None
    rerun_of: str | None = None


# --- commands (topic: commands, key: scan id) ---

class RunScan(ScanRequest):
    pass


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
    rule_ids: list[str]


class ScanStarted(Contract):
    scan_id: str
    units: list[UnitPlan]
    record_total: int
    rules_total: int
    started_at: str


class UnitProgressed(Contract):
    scan_id: str
    unit_id: str
    rules_done: int
    rules_total: int


class UnitCompleted(Contract):
    scan_id: str
    unit_id: str
    record_count: int  # the unit's counted_records
    rules_done: int
    violations_by_rule: dict[str, int]
    violations_by_severity: dict[str, int]


class UnitFailed(Contract):
    scan_id: str
    unit_id: str
    error: str
    violations_by_rule: dict[str, int] = {}
    violations_by_severity: dict[str, int] = {}


class ScanFinished(Contract):
    scan_id: str
    status: Literal["completed", "partial_failure", "failed"]
    record_count: int
    rules_processed: int
    violation_count: int
    violations_by_rule: dict[str, int]
    violations_by_severity: dict[str, int]
    compliance_score: float
    error: str | None = None
    finished_at: str


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
    blob: str
    record_count: int
    counted_records: int
    rules: list[dict[str, Any]]
    mapping: dict[str, str]
    temporal_scale: str | None = None


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
    signature: str


def _t(name: str) -> str:
    return f"scanledger.{name}.v1"


RUN_SCAN = _t("command.run-scan")
CHANGE_VIOLATION_STATUS = _t("command.change-violation-status")
SCAN_REQUESTED = _t("scan.requested")
SCAN_STARTED = _t("scan.started")
UNIT_PROGRESSED = _t("scan.unit.progressed")
UNIT_COMPLETED = _t("scan.unit.completed")
UNIT_FAILED = _t("scan.unit.failed")
SCAN_FINISHED = _t("scan.finished")
VIOLATION_STATUS_CHANGED = _t("violation.status-changed")
WORK_UNIT = _t("work.unit")
VIOLATION_DETECTED = _t("violation.detected")

MODELS: dict[str, type[Contract]] = {
    RUN_SCAN: RunScan,
    CHANGE_VIOLATION_STATUS: ChangeViolationStatus,
    SCAN_REQUESTED: ScanRequest,
    SCAN_STARTED: ScanStarted,
    UNIT_PROGRESSED: UnitProgressed,
    UNIT_COMPLETED: UnitCompleted,
    UNIT_FAILED: UnitFailed,
    SCAN_FINISHED: ScanFinished,
    VIOLATION_STATUS_CHANGED: ViolationStatusChanged,
    WORK_UNIT: WorkUnit,
    VIOLATION_DETECTED: ViolationDetected,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per message type, for docs/schemas."""
    return {type_: model.model_json_schema() for type_, model in MODELS.items()}
