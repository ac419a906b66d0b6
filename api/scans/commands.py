"""Writing scan commands to the ledger: what every route that starts or changes a scan shares.

The command is the record: the API writes nothing else for a decision (a scan request is
a RunScan on the commands topic, which the projector shows as a queued scan until the
coordinator takes it up). A command the broker does not take within the command timeout is
a 503 with Retry-After, and that 503 is a promise: the command carries an expiry
(services.domain.command_expiry) by which every consumer ignores it if it reaches the log later.
"""
from __future__ import annotations

import asyncio
import time

from starlette.requests import Request

from api.scans import reads
from api.web.db_work import run_db
from api.web.errors import unavailable
from api.web.requests import stable_id
from services.adapters.command_writer import CommandNotWritten
from services.domain import command_expiry
from services.domain import contracts as c
from services.domain.envelope import deterministic_id, make_event, new_id, with_actor
from services.domain.kinds import kind_of
from services.domain.vocabulary import API_SOURCE as SOURCE
from services.stores import request_store

POLL_S = 0.02
VISIBLE_WAIT_S = 2.0  # how long a new scan's POST waits for the projector to show it (it answers anyway)


async def send_command(request: Request, type_: str, scan_id: str, workspace_id: str, data: dict) -> dict:
    """Produce a command (acks=all, idempotent) before the API answers; 503 if the broker does not take it."""
    state = request.state
    command = make_event(type_, scan_id, data, id=deterministic_id(type_, scan_id, new_id()), source=SOURCE,
                         workspace_id=workspace_id)
    principal = state.principal  # authenticate() set it: no command without a caller
    command = command_expiry.with_expiry(with_actor(command, principal.token_id, principal.role),
                                         state.commands.timeout_s)
    try:
        await state.commands.write(state.settings.topics.commands, command)
    except CommandNotWritten as exc:
        raise unavailable(f"The ledger is unavailable: the command was not written ({exc}) and will never be"
                          " acted on; retry later", state.commands.timeout_s) from None
    return command


async def start_scan(request: Request, scan_request: dict) -> int:
    """Give the scan its run id and write its RunScan; returns the run id. A retry under the same
    Idempotency-Key gets the same scan id and run id (api.web.requests.stable_id).

    The run id comes from an API-side sequence: one allocated for a command that was never
    written is a harmless gap. Once written, the scan is waited for (briefly) until the
    projector shows it, so a client's next GET finds it; if the projector lags, the answer
    does not wait for it and the scan is readable a little later.
    """
    db = request.state.db
    scan_request["scan_id"] = stable_id(request, scan_request["scan_id"], kind_of(scan_request).scan_id_prefix)
    scan_request["operation_id"] = await run_db(request, request_store.new_operation_id, db, scan_request["scan_id"])
    await send_command(request, c.RUN_SCAN, scan_request["scan_id"], scan_request["workspace_id"], scan_request)
    await wait_until(request, lambda: reads.is_known(db, scan_request["scan_id"]), VISIBLE_WAIT_S)
    return scan_request["operation_id"]


async def wait_until(request: Request, check, timeout_s: float) -> bool:
    """Poll `check()` (database reads: each poll on a database thread) until it is true or the time is up."""
    deadline = time.monotonic() + timeout_s
    while not await run_db(request, check):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True
