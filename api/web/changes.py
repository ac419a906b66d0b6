"""A configuration change: one database transaction that puts its rows on the log before it commits.

`await change(request, fn, *args)` runs `fn(*args)` on a database thread inside a transaction (a
store function that opens its own `with transaction(db):` gets a savepoint of it). The triggers
of services.stores.config_log copy every config row it writes into the outbox; before COMMIT the
outbox goes to the config topic as ConfigChanged events (acked, with an expiry), and the offsets
they got become the rows' versions. If the broker does not take them in time the transaction rolls
back and the answer is 503: nothing changed, and an event that lands later, expired, is ignored.

The transaction holds SQLite's write lock while it waits for the ack (milliseconds; at most the
command timeout when the broker is away), so changes reach the log in the order they commit.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request

from api.web.errors import unavailable
from services.adapters.command_writer import CommandNotWritten, CommandWriter
from services.adapters.db import transaction
from services.settings import Settings
from services.stores import config_log

T = TypeVar("T")
log = logging.getLogger("scanledger.api")
RELAY_EVERY_S = 5.0


def _publish(db, commands: CommandWriter, settings: Settings, loop: asyncio.AbstractEventLoop,
             actor: tuple[str, str] | None, actor_after: int) -> None:
    """On a database thread, inside the transaction: every outbox row onto the log, in order."""
    for seqs, event in config_log.pending_events(db, actor, actor_after, commands.timeout_s):
        future = asyncio.run_coroutine_threadsafe(commands.write(settings.topics.config, event), loop)
        try:  # write() answers within the command timeout; a loop that stopped (shutdown) never does
            written = future.result(timeout=2 * commands.timeout_s + 1)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise CommandNotWritten("the API is stopping") from None
        config_log.published(db, seqs, event, written.offset)


async def change(request: Request, fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` as one config change, on the log before it commits (503 if the log refuses)."""
    state = request.state
    loop = asyncio.get_running_loop()
    principal = state.principal
    actor = (principal.token_id, principal.role)

    def unit() -> T:
        with transaction(state.db):
            before = config_log.last_seq(state.db)
            out = fn(*args, **kwargs)
            _publish(state.db, state.commands, state.settings, loop, actor, before)
        return out

    try:
        return await state.db_work.run(unit)
    except CommandNotWritten as exc:
        raise unavailable(f"The ledger is unavailable: the change was not written ({exc}) and was not made;"
                          " retry later", state.commands.timeout_s) from None


async def relay(db, db_work, commands: CommandWriter, settings: Settings) -> None:
    """Publish what waits in the outbox without a request: rows another process wrote (the bootstrap
    admin token), and those of a database from before config was on the log. At start, then every
    RELAY_EVERY_S while anything waits; a broker that is away is tried again."""
    loop = asyncio.get_running_loop()

    def unit() -> None:
        if not config_log.has_pending(db):
            return
        with transaction(db):
            _publish(db, commands, settings, loop, None, 0)

    try:
        await db_work.run(config_log.import_unlogged, db)
    except Exception:  # the rows written from now on still reach the log: the relay goes on
        log.exception("importing config rows from before the log failed")
    while True:
        try:
            await db_work.run(unit)
        except CommandNotWritten as exc:
            log.warning("config changes wait in the outbox: %s", exc)
        except Exception:  # the database is busy or away: the next round tries again
            log.exception("publishing the config outbox failed")
        await asyncio.sleep(RELAY_EVERY_S)
