"""The answers of sensitive-data scans (seed 004), each inside the /api/v1 envelope: connectors, a scan
started, its status with progress, coverage and workers, its findings and files, a cancel, the BYOC
deployment config and reports, detectors and the allow-list; as api/sensitive/queries.py and the
routes build them."""
from __future__ import annotations

from api.web.response_schemas import (
    ANY_OBJ,
    BOOL,
    INT,
    NUM,
    STR,
    TIME,
    answers,
    array,
    counts,
    envelope,
    nullable,
    obj,
)

SCAN_STATUS = {"enum": ["queued", "running", "completed", "partial", "failed", "cancelled"]}
CONNECTOR = obj({"id": STR, "name": STR, "type": STR, "config": ANY_OBJ, "created_at": TIME, "updated_at": TIME})
DELETED = obj({"id": STR, "deleted": {"const": True}})
STARTED = obj({"scan_id": STR, "status": {"const": "queued"}, "connectors": array(STR),
               "type": {"enum": ["full", "incremental"]}, "workers_requested": INT, "created_at": TIME})
PROGRESS = obj({"files_total": INT, "files_processed": INT, "files_failed": INT, "findings_count": INT,
                "percent_complete": INT, "elapsed_seconds": INT, "estimated_remaining_seconds": nullable(INT)})
COVERAGE = obj({"coverage_target": NUM, "coverage_strategy": {"enum": ["best_effort", "strict"]},
                "coverage_pct": NUM, "target_met": BOOL, "completeness_score": NUM,
                "enumeration_status": {"enum": ["complete", "in_progress", "partial", "failed"]},
                "total_enumerated": INT, "total_scanned": INT, "total_skipped": INT, "total_failed": INT})
SCAN = obj({
    "scan_id": STR, "status": SCAN_STATUS, "type": {"enum": ["full", "incremental"]}, "connectors": array(STR),
    "options": ANY_OBJ, "progress": PROGRESS, "coverage": COVERAGE,
    "workers": obj({"total": INT, "active": INT, "completed": INT, "failed": INT, "cancelled": INT}),
    "findings_by_detector": counts(), "occurrences_count": INT,
    "files_by_reason": obj({"skipped": counts(), "failed": counts()}), "message": nullable(STR),
    "created_at": TIME, "started_at": nullable(TIME),
    # only as the scan stands: incremental, finished, cancelled, failed
    "baseline_scans": {"type": "object", "additionalProperties": nullable(STR)},
    "completed_at": nullable(TIME), "cancelled_at": TIME, "error": STR,
}, optional=("baseline_scans", "completed_at", "cancelled_at", "error"))
WORKER = obj({
    "worker_id": STR, "status": {"enum": ["queued", "running", "completed", "failed", "cancelled"]},
    "chunk": obj({"start_index": INT, "end_index": INT, "file_count": INT}),
    "progress": obj({"files_processed": INT, "findings_count": INT, "percent_complete": INT}),
    "started_at": nullable(TIME), "completed_at": nullable(TIME),
    "external_worker": obj({"id": STR, "claims": INT}),
}, optional=("completed_at", "external_worker"))
FINDING = obj({
    "finding_id": STR, "connector_id": STR, "file": STR,
    "location": {"anyOf": [obj({"line": INT}), obj({"row": nullable(INT), "column": nullable(STR)})]},
    "offset": obj({"start": INT, "end": INT}), "detector": STR, "family": STR, "confidence": NUM,
    "masked_sample": STR, "found_at": TIME, "llm_verdict": nullable(STR), "llm_confidence": nullable(NUM),
    "llm_model": nullable(STR), "detector_confidence": NUM})
FILE = obj({"connector_id": STR, "file": STR, "status": STR, "reason": nullable(STR), "size": INT,
            "findings_count": INT, "occurrences": INT, "worker_id": STR, "processed_at": TIME})
CANCELLED = obj({"scan_id": STR, "status": {"const": "cancelled"},
                 "partial_results": obj({"files_processed": INT, "findings_count": INT}), "cancelled_at": TIME})
DEPLOYMENT = obj({"container_image": STR,
                  "environment": obj({"SCAN_ID": STR, "COORDINATOR_URL": STR, "AUTH_TOKEN": STR}),
                  "chunks": array(obj({"chunk_id": STR, "files": array(STR), "connector_config": ANY_OBJ}))})
# a BYOC worker's report: a claim (a chunk, or none open), a release, or accepted findings and heartbeats
REPORT = {"anyOf": [
    obj({"chunk": nullable(obj({"chunk_id": STR, "lease_id": STR, "attempt": INT, "work": ANY_OBJ})),
         "open_chunks": INT, "lease_seconds": INT, "heartbeat_seconds": INT, "retry_after_seconds": INT},
        optional=("lease_seconds", "heartbeat_seconds", "retry_after_seconds")),
    obj({"accepted": INT, "released": {"const": True}}),
    obj({"accepted": INT, "lease_seconds": INT, "chunk_done": BOOL})]}
DETECTOR = obj({"name": STR, "family": STR, "validates": STR, "confidence": array(NUM), "custom": BOOL, "id": STR},
               optional=("id",))  # a built-in has no id
CUSTOM_DETECTOR = obj({"id": STR, "name": STR, "pattern": STR, "checksum": nullable(STR), "confidence": NUM,
                       "created_at": TIME})
ALLOWED = obj({"id": STR, "masked": STR, "label": nullable(STR), "created_at": TIME})

answers("POST", "/api/v1/connectors", envelope(CONNECTOR))
answers("GET", "/api/v1/connectors", envelope(array(CONNECTOR)))
answers("GET", "/api/v1/connectors/{id}", envelope(CONNECTOR))
answers("POST", "/api/v1/scans/parallel", envelope(STARTED))
answers("GET", "/api/v1/scans", envelope(array(SCAN), paged=True))
answers("GET", "/api/v1/scans/{id}", envelope(SCAN))
answers("GET", "/api/v1/scans/{id}/workers", envelope(array(WORKER)))
answers("POST", "/api/v1/scans/{id}/cancel", envelope(CANCELLED))
answers("GET", "/api/v1/scans/{id}/findings", envelope(array(FINDING), paged=True))
answers("GET", "/api/v1/scans/{id}/files", envelope(array(FILE), paged=True))
answers("GET", "/api/v1/scans/{id}/deployment-config", envelope(DEPLOYMENT))
answers("POST", "/api/v1/scans/{id}/report", envelope(REPORT))
answers("GET", "/api/v1/detectors", envelope(array(DETECTOR)))
answers("POST", "/api/v1/detectors/custom", envelope(CUSTOM_DETECTOR))
answers("GET", "/api/v1/detectors/custom", envelope(array(CUSTOM_DETECTOR)))
answers("POST", "/api/v1/allowlist", envelope(ALLOWED))
answers("GET", "/api/v1/allowlist", envelope(array(ALLOWED)))
for path in ("/api/v1/connectors/{id}", "/api/v1/detectors/custom/{id}", "/api/v1/allowlist/{id}"):
    answers("DELETE", path, envelope(DELETED))
