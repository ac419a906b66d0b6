"""The configuration's history, read from the config topic: every version of every config row.

A version is the offset of the ConfigChanged that carries the row (services.stores.config_log), the
number a scan's RunScan names in `config_versions`; an event the broker took after its expiry (its
change was answered 503 and never made) is left out, as the projector leaves it.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.adapters.ledger_reader import LedgerReader, Meter
from services.domain import command_expiry
from services.domain.codec import PoisonRecord, decode_checked
from services.settings import Settings


@dataclass(frozen=True)
class ConfigVersion:
    version: int  # the config topic's offset
    logged_at: int  # ms, the broker's append time
    event: dict  # the ConfigChanged it came in (actor, workspace, time)
    table: str
    key: str
    row: dict | None  # None: deleted


def config_history(settings: Settings, table: str | None = None, key: str | None = None,
                   meter: Meter | None = None) -> list[ConfigVersion]:
    """Every version of the config rows (of `table`, of `key`) in log order."""
    reader = LedgerReader(settings, "audit")
    topic = settings.topics.config
    out = []
    try:
        for m in reader.read(reader.ends([(topic, p) for p in reader.partitions(topic)]), meter):
            if m.error():
                continue
            try:
                event = decode_checked(m.value())
            except PoisonRecord:
                continue  # the projector refused it too: it changed nothing
            if command_expiry.is_expired(event, m.timestamp()[1]):
                continue
            for change in event["data"]["changes"]:
                if (table is None or change["table"] == table) and (key is None or change["key"] == key):
                    out.append(ConfigVersion(m.offset(), m.timestamp()[1], event, change["table"], change["key"],
                                             change["row"]))
    finally:
        reader.close()
    return out
