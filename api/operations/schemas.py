"""The answers of the Runs API (seed 003): a run in the Activity list, in full, its containers, and what
abort, resume and rerun answer; as api/operations/views.py builds them."""
from __future__ import annotations

from api.sensitive.schemas import COVERAGE, PROGRESS
from api.web.response_schemas import (
    ANY_OBJ,
    INT,
    NUM,
    STR,
    TIME,
    answers,
    array,
    listing,
    nullable,
    obj,
    page,
)

RESULT = {"enum": ["queued", "running", "success", "failure", "aborted"]}
RUN = obj({
    "id": INT,
    "type": {"enum": ["catalog", "profile", "scan", "external_scan", "export", "materialize", "promote"]},
    "created": TIME, "start_time": nullable(TIME), "end_time": nullable(TIME), "result": RESULT,
    "message": nullable(STR), "triggered_by": STR, "datastore": nullable(obj({"id": INT, "name": STR})),
    "status": obj({"total_containers": INT, "containers_analyzed": INT, "partitions_scanned": INT,
                   "records_processed": INT, "anomalies_identified": INT})})
COMPLIANCE_SUMMARY = obj({"rules_total": INT, "rules_processed": nullable(INT), "record_total": INT,
                          "records_processed": INT, "violation_count": INT, "compliance_score": nullable(NUM),
                          "unevaluated": array(obj({"rule_id": STR, "count": INT,
                                                    "sample_record_indexes": array(INT)}))})
DETAIL = {**RUN, "properties": {
    **RUN["properties"],
    # a run the projector has not shown yet answers as in the list: these come with its first projection
    "scan_id": STR, "kind": STR, "configuration": ANY_OBJ,
    "summary": {"anyOf": [COMPLIANCE_SUMMARY, obj({"progress": PROGRESS, "coverage": COVERAGE})]},
    "trigger": obj({"triggered_by": STR, "created": TIME, "rerun_of": nullable(INT)})}}
CONTAINER = obj({"id": INT, "container": obj({"id": nullable(INT), "name": STR, "container_type": STR}),
                 "start_time": nullable(TIME), "end_time": nullable(TIME), "records_processed": INT,
                 "anomaly_count": INT, "result": RESULT, "message": nullable(STR)})

answers("GET", "/api/operations", page(RUN))
answers("GET", "/api/operations/{id}", DETAIL)
answers("GET", "/api/operations/{id}/containers", listing(CONTAINER))
for path in ("/api/operations/abort/{id}", "/api/operations/run/{id}", "/api/operations/rerun/{id}"):
    answers("PUT", path, RUN)
