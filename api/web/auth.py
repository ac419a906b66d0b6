"""Bearer tokens: each maps to one workspace and one role.

A worker token (a BYOC scan's AUTH_TOKEN, services/stores/byoc_store.py) is the Worker role,
bound to one scan: it may claim that scan's chunks and report on them (scan:report) and
nothing else, and it stops working once its scan has ended or was cancelled."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from api.web.db_work import run_db
from api.web.errors import ApiError
from services.domain.vocabulary import FINISHED
from services.stores import byoc_store, config_store
from services.stores.byoc_store import WORKER_TOKEN_PREFIX

T = TypeVar("T")
ROLE_PERMISSIONS = {
    "Admin": {"scan:trigger", "assets:read", "config:write", "tokens:manage"},
    "Member": {"scan:trigger", "assets:read", "config:write"},
    "Viewer": {"assets:read"},
    "Worker": {"scan:report"},
}


@dataclass(frozen=True)
class Principal:
    token_id: str
    workspace_id: str
    role: str
    user: str
    scan_id: str | None = None  # a worker token's one scan

    def can(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, set())


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Missing or invalid API token")
    return token.strip()


def _authorized(db, token: str, permission: str | None) -> Principal:
    principal = _principal(db, token)
    if principal is None:
        raise ApiError(401, "Missing or invalid API token")
    if permission:
        require(principal, permission)
    return principal


async def authenticate(request: Request, permission: str | None = None) -> Principal:
    principal = await run_db(request, _authorized, request.state.db, _token(request), permission)
    request.state.principal = principal  # what the request writes to the ledger names it (its actor)
    return principal


async def read_as(request: Request, permission: str, read: Callable[..., T]) -> T:
    """authenticate(), then `read(db, principal)`, as one unit that only reads (DbWork.read: on the loop
    when short, else in one trip to a database thread; a hand-off costs more of the API's CPU than a
    small query). The caller's token is checked first, so a 401 or 403 comes before anything `read` raises."""
    token = _token(request)

    def unit(db):
        principal = _authorized(db, token, permission)
        return principal, read(db, principal)

    principal, result = await request.state.db_work.read(unit, request.state.db)
    request.state.principal = principal
    return result


def _principal(db, token: str) -> Principal | None:
    row = config_store.principal(db, token)
    if row is not None:
        return Principal(row["id"], row["workspace_id"], row["role"], row["user_name"])
    if not token.startswith(WORKER_TOKEN_PREFIX):
        return None
    worker = byoc_store.worker_token(db, token)
    if worker is None or worker["status"] in FINISHED:  # its scan ended or was cancelled: the token is dead
        return None
    return Principal(worker["id"], worker["workspace_id"], "Worker", f"worker:{worker['scan_id']}", worker["scan_id"])


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise ApiError(403, f"The {principal.role} role does not have the {permission} permission")
