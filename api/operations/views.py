"""Runs shaped as seed 003 shows them: `success` for completed, integer ids, a status block."""
from __future__ import annotations

import orjson

from api.compliance.views import unevaluated
from api.sensitive.queries import scan_options
from services.adapters.connectors import public_config
from services.domain.kinds import KINDS, kind_of
from services.domain.vocabulary import ABORTED

RESULT = {"queued": "queued", "running": "running", "completed": "success", "partial_failure": "failure",
          "failed": "failure", "aborted": "aborted"}
UNIT_RESULT = {"pending": "queued", "running": "running", "completed": "success", "failed": "failure"}


def _datastore(row) -> dict | None:
    return {"id": row["datastore_id"], "name": row["datastore_name"]} if row["datastore_id"] is not None else None


def item_view(row) -> dict:
    """A row of api.operations.queries (its COLUMNS count each kind's records and anomalies)."""
    return {
        "id": row["operation_id"],
        "type": KINDS[row["kind"]].operation_type,
        "created": row["created_at"],
        "start_time": row["started_at"],
        "end_time": row["finished_at"] if row["shown_status"] == row["status"] else None,
        "result": RESULT[row["shown_status"]],
        "message": row["error"],
        "triggered_by": row["requested_by"],
        "datastore": _datastore(row),
        "status": {
            "total_containers": row["units_total"],
            "containers_analyzed": row["units_done"],
            "partitions_scanned": row["units_done"],
            "records_processed": row["records_processed"],
            "anomalies_identified": row["anomalies_identified"],
        },
    }


def as_dispatched(view: dict) -> dict:
    """A run as its resume or rerun answers it (seed 003): running (or queued while it waits to
    start), never a result it may already have reached; the result is for the next read."""
    return {**view, "result": "queued" if view["result"] == "queued" else "running", "end_time": None}


def pending_item_view(request: dict) -> dict:
    """A run the API accepted that the projector has not seen yet: queued."""
    store = request.get("datastore")
    return {"id": request["operation_id"], "type": kind_of(request).operation_type, "created": request["requested_at"],
            "start_time": None, "end_time": None, "result": "queued", "message": None,
            "triggered_by": request["requested_by"],
            "datastore": {"id": store["id"], "name": store["name"]} if store else None,
            "status": {"total_containers": len(request.get("targets") or []), "containers_analyzed": 0,
                       "partitions_scanned": 0, "records_processed": 0, "anomalies_identified": 0}}


def list_item_view(row) -> dict:
    """A row of api.operations.queries.operations_page: a projected run, or a pending one (its request)."""
    pending = row["pending_request"]
    return pending_item_view(orjson.loads(pending)) if pending is not None else item_view(row)


def _without_server_paths(value):
    """A snapshot as a reader may see it: a datastore's path as registered, never where the server keeps it
    (`resolved_path`; a snapshot from before it was kept apart has only the server's path, so none is shown)."""
    if isinstance(value, list):
        return [_without_server_paths(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "resolved_path" not in value and {"type", "path"} <= value.keys() and str(value["path"]).startswith("/"):
        value = {k: v for k, v in value.items() if k != "path"}
    return {k: _without_server_paths(v) for k, v in value.items() if k != "resolved_path"}


def detail_view(row, rerun_of: int | None, scan: dict | None = None) -> dict:
    """A run in full. `scan`: a sensitive-data scan's view (GET /api/v1/scans/:id), whose progress and
    coverage are its summary, so both pages give the same numbers."""
    request = orjson.loads(row["request"])
    if scan is not None:
        configuration = sensitive_configuration(request)
        summary = {"progress": scan["progress"], "coverage": scan["coverage"]}
    else:
        configuration = {k: _without_server_paths(request.get(k)) for k in (
            "policy", "upload", "mapping", "targets", "datastore", "audit_id", "audit_name")
            if request.get(k) is not None}
        summary = {"rules_total": row["rules_total"], "rules_processed": row["rules_processed"],
                   "record_total": row["record_total"], "records_processed": row["record_count"],
                   "violation_count": row["anomalies_identified"],  # the run's one count (operations/queries.py)
                   # only a completed run has a score (a failed one did not read all its data)
                   "compliance_score": row["compliance_score"] if row["status"] == "completed" else 0,
                   "unevaluated": unevaluated(row)}
    return {
        **item_view(row),
        "scan_id": row["scan_id"],
        "kind": row["kind"],
        "configuration": configuration,
        "summary": summary,
        "trigger": {"triggered_by": row["requested_by"], "created": row["created_at"], "rerun_of": rerun_of},
    }


def sensitive_configuration(request: dict) -> dict:
    """What a sensitive-data scan ran with: its type, its connectors as registered (references to secrets,
    never a secret, nor the server's resolved path: services.adapters.connectors.public_config), its
    options and, incremental, the scans its watermark came from."""
    return {"type": request.get("type", "full"),
            "connectors": [{"id": s["id"], "name": s["name"], "type": s["type"],
                            "config": public_config(s["type"], s["config"])} for s in request["connectors"]],
            "options": scan_options(request["options"]),
            "baseline_scans": request.get("baseline_scans") or {}}


def container_view(unit, scan_status: str) -> dict:
    """A unit of api.operations.queries.units."""
    records, anomalies = unit["records_processed"], unit["violation_count"]
    if unit["container_id"] is not None:
        container = {"id": unit["container_id"], "name": unit["container_name"],
                     "container_type": unit["container_type"]}
    elif unit["files_processed"] is not None:  # a sensitive-data scan's chunk: the files of one worker slot
        container = {"id": None, "name": f"chunk {unit['idx']}", "container_type": "chunk"}
        records, anomalies = unit["files_processed"], unit["findings"]  # so far, as its worker's progress shows
    else:  # a compliance scan's unit: a partition of its upload
        container = {"id": None, "name": f"partition {unit['idx']}", "container_type": "partition"}
    result = UNIT_RESULT[unit["status"]]
    if scan_status == ABORTED and unit["status"] in ("pending", "running"):
        result = "aborted"
    return {
        "id": unit["idx"] + 1,  # the container's place in its run
        "container": container,
        "start_time": unit["started_at"],
        "end_time": unit["finished_at"],
        "records_processed": records,
        "anomaly_count": anomalies,
        "result": result,
        "message": unit["error"],
    }
