"""The expiry rule that makes the API's 503 a promise (services/domain/command_expiry.py)."""
import pytest

from services.domain import command_expiry
from services.domain.envelope import make_event

T0 = 1_700_000_000_000  # ms


def command(**extra):
    return {**make_event("scanledger.command.run-scan.v1", "s1", {"scan_id": "s1"}, id="c", source="t",
                         workspace_id="w"), **extra}


def test_the_expiry_comes_a_grace_before_the_api_deadline():
    assert command_expiry.expiry_ms(T0, 5) == T0 + 4000
    assert command_expiry.expiry_ms(T0, 2) == T0 + 1600  # the grace is at most a fifth of the timeout
    stamped = command_expiry.with_expiry(command(), 5, now_ms=T0)
    assert stamped[command_expiry.EXPIRES] == command_expiry.iso_ms(T0 + 4000)
    assert stamped[command_expiry.EXPIRES].endswith("Z")
    assert command_expiry.parse_ms(stamped[command_expiry.EXPIRES]) == T0 + 4000
    assert command_expiry.EXPIRES not in command()  # the command itself is left as it was


@pytest.mark.parametrize("record_ms,expired", [(T0, False), (T0 + 3999, False), (T0 + 4000, False),
                                               (T0 + 4001, True), (T0 + 3_600_000, True)])
def test_a_record_appended_after_the_expiry_is_expired(record_ms, expired):
    assert command_expiry.is_expired(command_expiry.with_expiry(command(), 5, now_ms=T0), record_ms) is expired


@pytest.mark.parametrize("record_ms", [None, -1])
def test_a_record_without_a_timestamp_never_expires(record_ms):
    assert not command_expiry.is_expired(command_expiry.with_expiry(command(), 5, now_ms=T0), record_ms)


def test_a_message_without_an_expiry_never_expires():
    assert not command_expiry.is_expired(command(), T0 + 10**9)  # events, and commands from before expiries


def test_an_expiry_in_another_offset_is_read_exactly():
    assert command_expiry.is_expired(command(expiresat="2023-11-14T23:13:20.000+01:00"), T0 + 1)
    assert not command_expiry.is_expired(command(expiresat="2023-11-14T23:13:20.000+01:00"), T0)
