"""Every field the seed pages show in an answer is in that answer's schema in /openapi.json, at the same
place (the seeds are the specification: their example answers are copied here), and each example's
fields have the types and values the schema allows."""
from __future__ import annotations

import jsonschema
import pytest

from api.app import create_app
from api.web.openapi import openapi_document

SCAN_RUN = {"status": "running", "progress": {"total": 4, "completed": 1, "running": 2, "failed": 0, "pending": 1},
            "jobId": "batch-uuid", "startedAt": "2026-03-24T09:00:00Z", "finishedAt": None,
            "monitors": [{"monitorId": "uuid", "monitorName": "Record Count", "stage": "completed",
                          "durationMs": 1200, "error": None}]}
# (method, path, status, the seed's example answer)
EXAMPLES = [
    ("post", "/api/scan/run", "202", {"data": {"executionId": "aca-execution-id", "status": "running"}}),  # 000
    ("get", "/api/scan/status/{executionId}", "200", {"data": {
        "executionId": "aca-execution-id", "status": "running", "startedAt": "2026-03-24T09:00:00Z",
        "finishedAt": None}}),
    ("get", "/api/assets/scan-status", "200", {"data": [{
        "assetId": "uuid", "assetName": "orders", "status": "running", "lastCompletedAt": "2026-03-24T08:30:00Z",
        "currentRun": SCAN_RUN, "lastRun": {**SCAN_RUN, "status": "completed"}}]}),
    ("get", "/api/scan/{id}", "200", {  # 001
        "id": "abc12345-def6-7890-ghij-klmnopqrstuv", "status": "completed", "violation_count": 23,
        "compliance_score": 87.5, "rules_processed": 15, "rules_total": 15, "created_at": "2024-01-15T10:30:00Z",
        "completed_at": "2024-01-15T10:30:04Z", "audit_name": "Q1 2024 Compliance Audit", "record_count": 42000,
        "policy_id": "550e8400", "upload_id": "123e4567", "mapping_id": "789e0123", "audit_id": None,
        "mapping_config": {"amount": "Transaction Amount", "account": "Account ID", "timestamp": "Date"},
        "temporal_scale": "daily",
        "score_history": [{"score": 87.5, "timestamp": "2024-01-15T10:30:04Z", "action": "scan_completed",
                           "violation_id": None}],
        "delta": {"new_count": 5, "resolved_count": 12, "unchanged_count": 18, "previous_scan_id": "prev1234",
                  "previous_violation_count": 30},
        "error": None, "pii_findings": []}),
    ("post", "/api/scan/run", "200", {"scan_id": "abc12345-def6-7890-ghij-klmnopqrstuv", "status": "running"}),
    ("get", "/api/operations", "200", {"items": [{  # 003
        "id": 53388, "type": "scan", "created": "2026-01-01T00:00:00.000000Z",
        "start_time": "2026-01-01T00:00:00.000000Z", "end_time": "2026-01-01T00:00:00.000000Z", "result": "success",
        "message": None, "triggered_by": "user@example.com", "datastore": {"id": 101, "name": "Datastore-Sample"},
        "status": {"total_containers": 14, "containers_analyzed": 14, "partitions_scanned": 42,
                   "records_processed": 700000, "anomalies_identified": 0}}],
        "total": 1, "page": 1, "size": 50, "pages": 1}),
    ("get", "/api/operations/{id}/containers", "200", {"items": [{
        "id": 456, "container": {"id": 234, "name": "customers", "container_type": "table"},
        "start_time": "2026-01-01T00:00:00.000000Z", "end_time": "2026-01-01T00:00:00.000000Z",
        "records_processed": 50000, "anomaly_count": 0, "result": "success", "message": None}], "total": 14}),
    ("post", "/api/v1/scans/parallel", "201", {"status": "success", "data": {  # 004
        "scan_id": "scan-par-001", "status": "queued", "connectors": ["conn-abc123", "conn-def456"], "type": "full",
        "workers_requested": 10, "created_at": "2024-03-15T14:30:00Z"}}),
    ("get", "/api/v1/scans/{id}", "200", {"status": "success", "data": {
        "scan_id": "scan-par-001", "status": "running",
        "progress": {"files_total": 52000, "files_processed": 31200, "files_failed": 15, "findings_count": 847,
                     "percent_complete": 60, "elapsed_seconds": 342, "estimated_remaining_seconds": 228},
        "coverage": {"coverage_target": 0.8, "coverage_strategy": "best_effort", "coverage_pct": 0.55,
                     "target_met": False, "completeness_score": 0.55, "enumeration_status": "in_progress",
                     "total_enumerated": 52000, "total_scanned": 28600, "total_skipped": 9345, "total_failed": 15},
        "workers": {"total": 10, "active": 8, "completed": 2, "failed": 0},
        "created_at": "2024-03-15T14:30:00Z", "started_at": "2024-03-15T14:30:05Z"}}),
    ("get", "/api/v1/scans/{id}/workers", "200", {"status": "success", "data": [
        {"worker_id": "worker-001", "status": "running",
         "chunk": {"start_index": 0, "end_index": 5199, "file_count": 5200},
         "progress": {"files_processed": 4100, "findings_count": 89, "percent_complete": 79},
         "started_at": "2024-03-15T14:30:05Z"},
        {"worker_id": "worker-002", "status": "completed",
         "chunk": {"start_index": 5200, "end_index": 10399, "file_count": 5200},
         "progress": {"files_processed": 5200, "findings_count": 112, "percent_complete": 100},
         "started_at": "2024-03-15T14:30:05Z", "completed_at": "2024-03-15T14:35:42Z"}]}),
    ("post", "/api/v1/scans/{id}/cancel", "200", {"status": "success", "data": {
        "scan_id": "scan-par-001", "status": "cancelled",
        "partial_results": {"files_processed": 31200, "findings_count": 847}, "cancelled_at": "2024-03-15T14:36:00Z"}}),
    ("get", "/api/v1/scans/{id}/deployment-config", "200", {"status": "success", "data": {
        "container_image": "slimio/scanner:1.0.0-full",
        "environment": {"SCAN_ID": "scan-par-001",
                        "COORDINATOR_URL": "https://api.slim.io/api/v1/scans/scan-par-001/report",
                        "AUTH_TOKEN": "worker-token-xyz"},
        "chunks": [{"chunk_id": "chunk-001", "files": ["s3://bucket/file1.csv", "s3://bucket/file2.json"],
                    "connector_config": {}}]}}),
]


@pytest.fixture(scope="module")
def doc():
    return openapi_document(create_app().routes)


def _schema(doc, method, path, status) -> dict:
    return doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def _missing(example, schema: dict, where: str = "") -> list[str]:
    """The example's fields the schema does not name, where they are."""
    options = schema.get("anyOf", [schema])
    if isinstance(example, list):
        return [m for item in example for m in _missing(item, next(
            (o["items"] for o in options if o.get("type") == "array"), {}), f"{where}[]")]
    if not isinstance(example, dict):
        return []
    found = next((o for o in options if o.get("type") == "object"), {})
    if "additionalProperties" in found and "properties" not in found:  # a map: any key
        return _missing(list(example.values()), {"type": "array", "items": found["additionalProperties"]}, where)
    properties = found.get("properties", {})
    out = [f"{where}.{k}" for k in example if k not in properties]
    return out + [m for k, v in example.items() if k in properties for m in _missing(v, properties[k], f"{where}.{k}")]


@pytest.mark.parametrize(("method", "path", "status", "example"), EXAMPLES, ids=[f"{m} {p} {s}" for m, p, s, _ in
                                                                                 EXAMPLES])
def test_the_seeds_fields_are_in_the_schema_and_their_example_validates(doc, method, path, status, example):
    schema = _schema(doc, method, path, status)
    assert _missing(example, schema) == []
    # every type and value as the seed shows it; a field the seed's example leaves out that our answer
    # always gives (a scan's `options`, its workers' `cancelled` count) is the only thing it may lack
    errors = [e for e in jsonschema.Draft202012Validator(schema).iter_errors(example) if e.validator != "required"]
    assert [(list(e.absolute_path), e.message) for e in errors] == [], path
