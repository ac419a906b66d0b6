"""Compliance scans (seeds 001 and 002) and their violations."""
from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import Route

from api import compliance_views, queries
from api.auth import Principal, authenticate, require
from api.errors import ApiError, not_found
from api.monitor_routes import run_monitor_scan
from api.openapi import request_body
from api.params import MAX_PAGE, QueryInt
from api.requests import idempotent, json_body, parse
from api.responses import json_response
from api.scan_commands import send_command, start_scan, wait_until
from services.domain import contracts as c
from services.domain.envelope import utcnow
from services.domain.kinds import COMPLIANCE
from services.domain.policy import missing_columns
from services.domain.rules import parse_rule
from services.domain.vocabulary import FINISHED, FindingStatus, Severity
from services.stores import config_store
from services.stores.config_store import new_id


@request_body("POST", "/api/scan/run")
class ScanRunBody(BaseModel):
    policy_id: str = Field(min_length=1)
    upload_id: str = Field(min_length=1)
    mapping_id: str = Field(min_length=1)
    audit_id: str | None = Field(None, max_length=1000)
    audit_name: str | None = Field(None, max_length=1000)


def build_request(db, principal: Principal, body: ScanRunBody) -> dict:
    """Resolve everything the scan will use into the snapshot it carries (404s as seed 002)."""
    ws = principal.workspace_id
    mapping = config_store.get_mapping(db, ws, body.mapping_id)
    if mapping is None:
        raise not_found("Mapping not found. Confirm mapping first.")
    upload = config_store.get_upload(db, ws, body.upload_id)
    if upload is None:
        raise not_found("Upload not found. Upload data first.")
    policy = config_store.get_policy(db, ws, body.policy_id)
    rules = [r for r in (policy or {}).get("rules", []) if r.get("active", True)]
    if not rules:
        raise not_found("No rules found for this policy.")
    if mapping["upload_id"] != upload["id"]:
        raise ApiError(400, "Invalid request body",
                       [{"path": ["mapping_id"], "message": "Mapping was confirmed for another upload"}])
    details = [{"path": ["policy_id"], "message": f"Rule '{r['id']}' uses field '{f}', which the upload lacks"}
               for r in rules for f in missing_columns(parse_rule(r), mapping["mapping"], upload["columns"])]
    if details:
        raise ApiError(400, "Invalid request body", details)
    return c.ComplianceScanRequest(
        scan_id=new_id(),
        kind=COMPLIANCE.name,
        workspace_id=ws,
        requested_by=principal.user,
        requested_at=utcnow(),
        policy=c.PolicySnapshot(id=policy["id"], name=policy["name"], rules=rules),
        upload=c.UploadSnapshot(id=upload["id"], filename=upload["filename"], blob=upload["blob"],
                                record_count=upload["record_count"], columns=upload["columns"],
                                pii_findings=upload["pii_findings"]),
        mapping=c.MappingSnapshot(id=mapping["id"], mapping=mapping["mapping"],
                                  temporal_scale=mapping["temporal_scale"]),
        audit_id=body.audit_id,
        audit_name=body.audit_name,
        rerun_of=None,
    ).model_dump(exclude_unset=True)


async def run_compliance_scan(request: Request, principal: Principal, body: dict):
    require(principal, "scan:trigger")
    db = request.app.state.db
    scan_request = build_request(db, principal, parse(ScanRunBody, body))
    scan_id = scan_request["scan_id"]
    await start_scan(request, scan_request)
    # Seed 002 scans "run synchronously": answer once the results are final, or after the wait,
    # unless the client asks not to wait (RFC 7240 `Prefer: respond-async`).
    if "respond-async" not in request.headers.get("prefer", ""):
        await wait_until(lambda: queries.is_settled(queries.scan(db, principal.workspace_id, scan_id)),
                         request.app.state.settings.scan_sync_wait_s)
    return json_response({"scan_id": scan_id, "status": "running"})


async def run_scan(request: Request):
    """Trigger a scan: with no body or `{}` a workspace monitor scan (seed 000), else a compliance scan (seed 002)."""
    principal = authenticate(request, "scan:trigger")  # before any Idempotency-Key replay

    async def handler():
        body = await json_body(request, allow_empty=True)
        if not body:
            return await run_monitor_scan(request, principal)
        return await run_compliance_scan(request, principal, body)

    return await idempotent(request, principal, handler)


async def get_scan(request: Request):
    """Status, results, score history and delta of a compliance scan (seed 001)."""
    principal = authenticate(request, "assets:read")
    db = request.app.state.db
    scan_id = request.path_params["id"]
    row, pending = queries.scan_or_pending(db, principal.workspace_id, scan_id)
    if row is not None:
        return json_response(compliance_views.scan_view(db, row))
    if pending is None:
        raise not_found("Scan not found")
    return json_response(compliance_views.pending_view(pending))


class ViolationQuery(BaseModel):
    page: QueryInt = Field(1, ge=1, le=MAX_PAGE)
    size: QueryInt = Field(50, ge=1, le=1000)
    rule_id: str | None = None
    status: FindingStatus | None = None
    severity: Severity | None = None


async def list_violations(request: Request):
    """The violations of a scan, paginated, filtered by rule, status and severity."""
    principal = authenticate(request, "assets:read")
    db = request.app.state.db
    scan_id = request.path_params["id"]
    if queries.scan_or_pending(db, principal.workspace_id, scan_id) == (None, None):
        raise not_found("Scan not found")
    query = parse(ViolationQuery, dict(request.query_params))
    return json_response(queries.violations_page(db, scan_id, query.page, query.size, query.rule_id, query.status,
                                                 query.severity))


@request_body("PATCH", "/api/violations/{id}")
class ViolationPatch(BaseModel):
    status: FindingStatus


def violation_view(row) -> dict:
    return {k: row[k] for k in ("id", "scan_id", "rule_id", "rule_name", "rule_type", "severity", "account",
                                "record_index", "record_key", "value", "window", "signature", "status",
                                "detected_at")}


async def patch_violation(request: Request):
    """Resolve, dismiss or reopen a violation; the score follows."""
    principal = authenticate(request, "config:write")
    db = request.app.state.db
    vid = request.path_params["id"]
    patch = parse(ViolationPatch, await json_body(request))
    row = queries.violation(db, principal.workspace_id, vid)
    if row is None:
        raise not_found("Violation not found")
    if not (row["finalized"] and row["scan_status"] in FINISHED):
        raise ApiError(409, "The scan has not finished yet")
    if row["status"] != patch.status:
        await send_command(request, c.CHANGE_VIOLATION_STATUS, row["scan_id"], principal.workspace_id,
                           c.ChangeViolationStatus(scan_id=row["scan_id"], violation_id=vid, severity=row["severity"],
                                                   status=patch.status, changed_by=principal.user).model_dump())
        await wait_until(lambda: queries.violation(db, principal.workspace_id, vid)["status"] == patch.status,
                         request.app.state.settings.scan_sync_wait_s)
    return json_response({**violation_view(row), "status": patch.status})


routes = [
    Route("/api/scan/run", run_scan, methods=["POST"]),
    Route("/api/scan/{id}", get_scan, methods=["GET"]),
    Route("/api/scan/{id}/violations", list_violations, methods=["GET"]),
    Route("/api/violations/{id}", patch_violation, methods=["PATCH"]),
]
