"""The API's command writer without a broker: a write nobody acks is refused in time, and the
producer that failed it is replaced (services/adapters/command_writer.py)."""
import asyncio

import pytest

from harness.system import free_port
from services.adapters.command_writer import CommandNotWritten, CommandWriter
from services.domain.command_expiry import with_expiry
from services.domain.envelope import make_event
from services.settings import Settings


def command() -> dict:
    event = make_event("scanledger.command.run-scan.v1", "s1", {"scan_id": "s1"}, id="c", source="t",
                       workspace_id="w")
    return with_expiry(event, 0.5)


def test_an_unacked_write_is_refused_within_the_timeout_and_the_producer_replaced():
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", command_timeout_s=0.5)  # nobody listens
    writer = CommandWriter(settings)
    first = writer._generation
    with pytest.raises(CommandNotWritten):  # refused, not left waiting (bench measures how fast)
        asyncio.run(writer.write("t.commands", command()))
    assert first.retired.is_set() and writer._generation is not first  # purged and replaced
    writer.close(1)


def test_a_producer_that_failed_fatally_is_replaced_before_the_next_write():
    writer = CommandWriter(Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", command_timeout_s=0.2))
    broken = writer._generation
    broken.broken = "fatal: simulated"
    assert writer._current() is not broken and broken.retired.is_set()
    writer.close(1)
