"""The read side's one schema: the projector writes these tables, the API reads them.

Both sides import this module (projections/ to create, write and drop; api/ queries run
against it, checked by tests/unit/test_read_queries.py), so a renamed column breaks a test
rather than a page. The tables are disposable: `replay` drops every table declared here and
rebuilds them from the ledger, so TABLES is read off SCHEMA and a new table cannot be
forgotten there (it would survive a replay while rm_processed_events, dropped, let the events
be applied on top of its stale rows).

rm_processed_events and projector_offsets are the projector's bookkeeping: the lifecycle
events already applied, and the next offset of every partition, stored in the same
transaction as the rows they account for.
"""
from __future__ import annotations

import re

SCHEMA = """
CREATE TABLE IF NOT EXISTS rm_scan_requests (
    scan_id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, kind TEXT NOT NULL, operation_id INTEGER,
    request TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rm_scan_requests_operation ON rm_scan_requests (workspace_id, operation_id);
CREATE TABLE IF NOT EXISTS rm_scans (
    scan_id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    policy_id TEXT, policy_name TEXT, upload_id TEXT, mapping_id TEXT, audit_id TEXT, audit_name TEXT,
    mapping_config TEXT, temporal_scale TEXT, requested_by TEXT, rerun_of TEXT, pii_findings TEXT,
    record_total INTEGER NOT NULL DEFAULT 0, record_count INTEGER NOT NULL DEFAULT 0,
    rules_total INTEGER NOT NULL DEFAULT 0, rules_processed INTEGER, rule_evals_total INTEGER NOT NULL DEFAULT 0,
    rule_evals_done INTEGER NOT NULL DEFAULT 0, units_total INTEGER NOT NULL DEFAULT 0,
    violation_count INTEGER, violations_seen INTEGER NOT NULL DEFAULT 0, compliance_score REAL,
    error TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    finalized INTEGER NOT NULL DEFAULT 0, delta TEXT,
    operation_id INTEGER, datastore_id INTEGER, datastore_name TEXT, request TEXT, deleted_at TEXT,
    unevaluated TEXT);
CREATE INDEX IF NOT EXISTS rm_scans_operation ON rm_scans (workspace_id, operation_id);
CREATE INDEX IF NOT EXISTS rm_scans_policy ON rm_scans (workspace_id, policy_id, created_at);
CREATE TABLE IF NOT EXISTS rm_units (
    unit_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, idx INTEGER NOT NULL, record_count INTEGER NOT NULL,
    rules_total INTEGER NOT NULL, rules_done INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,
    violation_count INTEGER NOT NULL DEFAULT 0, error TEXT,
    container_id INTEGER, container_name TEXT, container_type TEXT, started_at TEXT, finished_at TEXT,
    records_processed INTEGER NOT NULL DEFAULT 0, datastore_id INTEGER, scan_kind TEXT, scan_created_at TEXT);
CREATE INDEX IF NOT EXISTS rm_units_scan ON rm_units (scan_id, idx);
CREATE INDEX IF NOT EXISTS rm_units_container ON rm_units (container_id, scan_kind, scan_created_at, scan_id);
CREATE INDEX IF NOT EXISTS rm_units_datastore ON rm_units (datastore_id);
CREATE TABLE IF NOT EXISTS rm_unit_monitors (
    unit_id TEXT NOT NULL, monitor_id TEXT NOT NULL, position INTEGER NOT NULL, monitor_name TEXT NOT NULL,
    stage TEXT NOT NULL, duration_ms INTEGER, error TEXT, anomalies INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (unit_id, monitor_id));
CREATE TABLE IF NOT EXISTS rm_asset_profiles (
    container_id INTEGER PRIMARY KEY, scan_id TEXT NOT NULL, columns TEXT NOT NULL, row_count INTEGER NOT NULL,
    synced_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rm_violations (
    violation_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, rule_id TEXT NOT NULL, rule_name TEXT,
    rule_type TEXT, severity TEXT NOT NULL, account TEXT, record_index INTEGER, record_key TEXT NOT NULL,
    value TEXT, "window" TEXT, signature TEXT NOT NULL, detected_at TEXT NOT NULL, container_id INTEGER,
    observed TEXT, record TEXT);
-- a scan's violations in the order their pages list them (api/scans/reads.violations_page): a page is a walk
-- of the index, not a sort of all the scan's violations
CREATE INDEX IF NOT EXISTS rm_violations_page ON rm_violations (scan_id, rule_id, record_index, record_key);
CREATE TABLE IF NOT EXISTS rm_violation_status (
    violation_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, status TEXT NOT NULL, changed_at TEXT NOT NULL,
    changed_by TEXT);
CREATE TABLE IF NOT EXISTS rm_score_history (
    event_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, position INTEGER NOT NULL, score REAL NOT NULL,
    timestamp TEXT NOT NULL, action TEXT NOT NULL, violation_id TEXT);
CREATE INDEX IF NOT EXISTS rm_score_history_scan ON rm_score_history (scan_id, position);
CREATE TABLE IF NOT EXISTS rm_sensitive_scans (
    scan_id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, type TEXT NOT NULL, connectors TEXT NOT NULL,
    options TEXT NOT NULL, coverage_target REAL NOT NULL, coverage_strategy TEXT NOT NULL,
    workers_requested INTEGER NOT NULL, enumeration_status TEXT NOT NULL DEFAULT 'in_progress',
    total_enumerated INTEGER NOT NULL DEFAULT 0, listings TEXT, created_at TEXT NOT NULL, cancelled_at TEXT);
CREATE INDEX IF NOT EXISTS rm_sensitive_scans_list ON rm_sensitive_scans (workspace_id, created_at, scan_id);
CREATE TABLE IF NOT EXISTS rm_sensitive_chunks (
    unit_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, idx INTEGER NOT NULL, start_index INTEGER NOT NULL,
    end_index INTEGER NOT NULL, file_count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rm_sensitive_chunks_scan ON rm_sensitive_chunks (scan_id, idx);
CREATE TABLE IF NOT EXISTS rm_sensitive_offers (
    unit_id TEXT PRIMARY KEY, scan_id TEXT NOT NULL, idx INTEGER NOT NULL, attempt INTEGER NOT NULL,
    work TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rm_sensitive_offers_scan ON rm_sensitive_offers (scan_id, idx);
CREATE TABLE IF NOT EXISTS rm_sensitive_files (
    scan_id TEXT NOT NULL, connector_id TEXT NOT NULL, name TEXT NOT NULL, unit_id TEXT NOT NULL,
    idx INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, size INTEGER NOT NULL, version TEXT NOT NULL,
    findings INTEGER NOT NULL, at TEXT NOT NULL, occurrences INTEGER, PRIMARY KEY (scan_id, connector_id, name));
CREATE INDEX IF NOT EXISTS rm_sensitive_files_unit ON rm_sensitive_files (unit_id);
CREATE TABLE IF NOT EXISTS rm_sensitive_findings (
    scan_id TEXT NOT NULL, finding_id TEXT NOT NULL, connector_id TEXT NOT NULL, file TEXT NOT NULL,
    row INTEGER, col TEXT, line INTEGER, start INTEGER NOT NULL, end_ INTEGER NOT NULL, detector TEXT NOT NULL,
    family TEXT NOT NULL, confidence REAL NOT NULL, masked TEXT NOT NULL, found_at TEXT NOT NULL,
    llm_verdict TEXT, llm_confidence REAL, llm_model TEXT, detector_confidence REAL,
    PRIMARY KEY (scan_id, finding_id));
-- A file outcome projected after its scan was cancelled (its scan.aborted is earlier on the partition),
-- and the findings of such a file: recorded, not counted (services.readmodels.sensitive_scans); a resume counts them.
CREATE TABLE IF NOT EXISTS rm_sensitive_late_files (
    scan_id TEXT NOT NULL, connector_id TEXT NOT NULL, name TEXT NOT NULL, unit_id TEXT NOT NULL,
    idx INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, size INTEGER NOT NULL, version TEXT NOT NULL,
    findings INTEGER NOT NULL, at TEXT NOT NULL, occurrences INTEGER, PRIMARY KEY (scan_id, connector_id, name));
CREATE TABLE IF NOT EXISTS rm_sensitive_late_findings (
    scan_id TEXT NOT NULL, finding_id TEXT NOT NULL, connector_id TEXT NOT NULL, file TEXT NOT NULL,
    row INTEGER, col TEXT, line INTEGER, start INTEGER NOT NULL, end_ INTEGER NOT NULL, detector TEXT NOT NULL,
    family TEXT NOT NULL, confidence REAL NOT NULL, masked TEXT NOT NULL, found_at TEXT NOT NULL,
    llm_verdict TEXT, llm_confidence REAL, llm_model TEXT, detector_confidence REAL,
    PRIMARY KEY (scan_id, finding_id));
CREATE INDEX IF NOT EXISTS rm_sensitive_late_findings_file ON rm_sensitive_late_findings (scan_id, connector_id,
    file);
-- a page of findings in their keyset order, and the counts per detector, without sorting a scan's rows
CREATE INDEX IF NOT EXISTS rm_sensitive_findings_page ON rm_sensitive_findings (scan_id, connector_id, file,
    finding_id);
CREATE INDEX IF NOT EXISTS rm_sensitive_findings_detector ON rm_sensitive_findings (scan_id, detector);
-- each scan's ledger, in log order (services.readmodels.scan_history)
CREATE TABLE IF NOT EXISTS rm_scan_history (
    scan_id TEXT NOT NULL, event_id TEXT NOT NULL, workspace_id TEXT NOT NULL, logged_at INTEGER NOT NULL,
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, type TEXT NOT NULL, time TEXT NOT NULL,
    source TEXT NOT NULL, actor_id TEXT, actor_role TEXT, worker_id TEXT, event TEXT NOT NULL,
    PRIMARY KEY (scan_id, event_id));
CREATE INDEX IF NOT EXISTS rm_scan_history_order ON rm_scan_history (scan_id, logged_at, topic, "offset");
CREATE TABLE IF NOT EXISTS rm_processed_events (event_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS projector_offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""

# Every table SCHEMA creates, in its order: what `replay` drops and rebuilds.
TABLES: tuple[str, ...] = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))
BOOKKEEPING = ("rm_processed_events", "projector_offsets")  # the projector's own, no read model's


def create(conn) -> None:
    """The tables in their current shape: after `drop` (a replay), or a fresh database's. An older
    database's tables reach it through services.stores.migrations (services.stores.init)."""
    conn.executescript(SCHEMA)


def drop(conn) -> None:
    """Drop every read-model table (their indexes go with them)."""
    for table in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
