"""Bearer tokens: each maps to one workspace and one role."""
from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from api.db_work import run_db
from api.errors import ApiError
from services.stores import config_store

ROLE_PERMISSIONS = {
    "Admin": {"scan:trigger", "assets:read", "config:write", "tokens:manage"},
    "Member": {"scan:trigger", "assets:read", "config:write"},
    "Viewer": {"assets:read"},
}


@dataclass(frozen=True)
class Principal:
    token_id: str
    workspace_id: str
    role: str
    user: str

    def can(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, set())


async def authenticate(request: Request, permission: str | None = None) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Missing or invalid API token")
    row = await run_db(request, config_store.principal, request.app.state.db, token.strip())
    if row is None:
        raise ApiError(401, "Missing or invalid API token")
    principal = Principal(row["id"], row["workspace_id"], row["role"], row["user_name"])
    if permission:
        require(principal, permission)
    return principal


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise ApiError(403, f"The {principal.role} role does not have the {permission} permission")
