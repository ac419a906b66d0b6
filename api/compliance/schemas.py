"""The answers of compliance scans (seeds 001, 002): uploads, mappings, policies, a scan and its violations,
as api/compliance/views.py, config_routes.py and api/scans/reads.py build them."""
from __future__ import annotations

from api.web.response_schemas import (
    ANY_OBJ,
    INT,
    NUM,
    STR,
    TIME,
    answers,
    array,
    from_model,
    listing,
    nullable,
    obj,
    page,
)
from services.domain.rules import Rule

PII_FINDING = obj({"column": STR, "type": STR, "count": INT, "samples": array(STR)})
UPLOAD = obj({"upload_id": STR, "filename": nullable(STR), "record_count": INT, "columns": array(STR),
              "pii_findings": array(PII_FINDING), "created_at": TIME,
              "dialect": ANY_OBJ, "renamed_columns": ANY_OBJ}, optional=("dialect", "renamed_columns"))
MAPPING = obj({"mapping_id": STR, "upload_id": STR, "mapping": {"type": "object", "additionalProperties": STR},
               "temporal_scale": {"enum": ["daily", "weekly", "monthly"]}, "confirmed": {"const": True},
               "created_at": TIME,
               "warnings": array(obj({"path": array({"type": ["string", "integer"]}), "message": STR}))},
              optional=("warnings",))
POLICY = obj({"id": STR, "name": STR, "description": nullable(STR), "rules": array(from_model(Rule)),
              "created_at": TIME, "updated_at": TIME})
SCAN = obj({
    "id": STR, "status": {"enum": ["pending", "running", "completed", "failed", "aborted"]},
    "violation_count": INT, "compliance_score": NUM, "rules_processed": INT, "rules_total": INT,
    "created_at": TIME, "completed_at": nullable(TIME), "audit_name": nullable(STR), "record_count": INT,
    "policy_id": nullable(STR), "upload_id": nullable(STR), "mapping_id": nullable(STR), "audit_id": nullable(STR),
    "mapping_config": {"type": "object", "additionalProperties": STR}, "temporal_scale": nullable(STR),
    "score_history": array(obj({"score": NUM, "timestamp": TIME, "action": STR, "violation_id": nullable(STR)})),
    "delta": nullable(obj({"new_count": INT, "resolved_count": INT, "unchanged_count": INT,
                           "previous_scan_id": STR, "previous_violation_count": INT})),
    "error": nullable(STR),
    "unevaluated": array(obj({"rule_id": STR, "count": INT, "sample_record_indexes": array(INT)})),
    "pii_findings": array(PII_FINDING),
}, optional=("unevaluated",))  # a scan the projector has not shown yet has nothing left unevaluated to list
VIOLATION = obj({
    "id": STR, "scan_id": STR, "rule_id": STR, "rule_name": nullable(STR), "rule_type": nullable(STR),
    "severity": STR, "account": nullable(STR), "record_index": nullable(INT), "record_key": STR,
    "value": nullable(STR), "window": nullable(STR), "signature": STR,
    "status": {"enum": ["open", "resolved", "dismissed"]}, "detected_at": TIME,
    "record": ANY_OBJ, "observed": ANY_OBJ})

answers("POST", "/api/upload", UPLOAD)
answers("POST", "/api/mapping/confirm", MAPPING)
for method, path in (("POST", "/api/policies"), ("GET", "/api/policies/{id}"),
                     ("PUT", "/api/policies/{id}")):
    answers(method, path, POLICY)
answers("GET", "/api/policies", listing(POLICY))
answers("GET", "/api/scan/{id}", SCAN)
answers("GET", "/api/scan/{id}/violations", page(VIOLATION))
answers("PATCH", "/api/violations/{id}", VIOLATION)
