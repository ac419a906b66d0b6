"""Writing scan commands to the ledger: what every route that starts or changes a scan shares."""
from __future__ import annotations

import asyncio
import time

from starlette.requests import Request

from services import config_store
from services import contracts as c
from services.config_store import new_id
from services.envelope import deterministic_id, make_event

SOURCE = "scanledger/api"
POLL_S = 0.02


async def send_command(request: Request, type_: str, scan_id: str, workspace_id: str, data: dict) -> None:
    """Produce a command with acks=all before the API answers."""
    state = request.app.state
    command = make_event(type_, scan_id, data, id=deterministic_id(type_, scan_id, new_id()), source=SOURCE,
                         workspace_id=workspace_id)
    state.publisher.publish(state.settings.topics.commands, command)
    await state.publisher.flush_async()


async def start_scan(request: Request, scan_request: dict) -> int:
    """Record the request (visible at once as queued), give it its run id, send RunScan."""
    db = request.app.state.db
    scan_id, workspace_id = scan_request["scan_id"], scan_request["workspace_id"]
    scan_request["operation_id"] = config_store.new_operation_id(db, scan_id)
    config_store.add_scan_request(db, workspace_id, scan_id, scan_request["kind"], scan_request)
    await send_command(request, c.RUN_SCAN, scan_id, workspace_id, scan_request)
    return scan_request["operation_id"]


async def wait_until(check, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not check():
        await asyncio.sleep(POLL_S)
