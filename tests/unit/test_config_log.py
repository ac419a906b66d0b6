"""Config on the log, without a broker: the triggers' outbox, the events made of it, and the apply that
rebuilds the tables from those events alone (services.stores.config_log)."""
from __future__ import annotations

import itertools
import time

import orjson
import pytest

from services import stores
from services.adapters.db import connect, transaction
from services.domain import command_expiry
from services.domain import contracts as c
from services.domain.codec import decode_checked
from services.domain.envelope import encode
from services.readmodels.record import Record
from services.stores import catalog_store, config_log, config_store, detector_store

RULES = [{"id": "r1", "type": "threshold", "field": "amount", "operator": ">", "value": 10, "active": True}]


@pytest.fixture
def db(tmp_path):
    conn = connect(f"sqlite:///{tmp_path / 'live.db'}")
    stores.init(conn, "admin-secret")
    yield conn
    conn.close()


@pytest.fixture
def replica(tmp_path):
    conn = connect(f"sqlite:///{tmp_path / 'replica.db'}")
    stores.init(conn)
    yield conn
    conn.close()


class FakeLog:
    """Offsets and records as the config topic would give them, each event through the real codec."""

    def __init__(self):
        self.records: list[Record] = []
        self.offsets = itertools.count()

    def publish(self, conn, actor=None, after=0, now_ms=None):
        for seqs, event in config_log.pending_events(conn, actor, after, 5.0):
            offset = next(self.offsets)
            decoded = decode_checked(encode(event))  # a ConfigChanged must pass what the projector checks
            self.records.append(Record("config", 0, offset, decoded["type"], decoded, now_ms or _now_ms()))
            config_log.published(conn, seqs, event, offset)


def _now_ms() -> int:
    return int(time.time() * 1000)


def change(conn, log: FakeLog, fn, *args, actor=("tok-1", "Admin")):
    """What api.web.changes.change does, with the fake log."""
    with transaction(conn):
        before = config_log.last_seq(conn)
        out = fn(conn, *args)
        log.publish(conn, actor, before)
    return out


def every_table(conn) -> dict[str, list[dict]]:
    return {table: config_log.rows(conn, table) for table in config_log.LOGGED}


def test_every_write_is_captured_and_the_replica_rebuilt_from_the_events_equals_the_live_tables(db, replica):
    log = FakeLog()
    log.publish(db)  # the bootstrap admin token, written at init: a system event
    ws = "default"
    upload = change(db, log, config_store.add_upload, ws, "tx.csv", "raw/1", "tbl/1", 3, ["amount"], [])
    change(db, log, config_store.add_mapping, ws, upload["id"], {"amount": "amount"}, None)
    policy = change(db, log, config_store.add_policy, ws, "P", "d", RULES)
    change(db, log, config_store.update_policy, ws, policy["id"], "P2", None, RULES)
    doomed = change(db, log, config_store.add_policy, ws, "gone", None, RULES)
    change(db, log, config_store.delete_policy, ws, doomed["id"])
    store = change(db, log, catalog_store.add_datastore, ws, "lake", "local_dir", "/data", "/data", None)
    change(db, log, catalog_store.register_assets, ws, store["id"], [("a.csv", "file"), ("b.csv", "file")])
    change(db, log, detector_store.add_custom, ws, {"name": "emp", "pattern": r"EMP-\d{6}", "checksum": None,
                                                    "confidence": 0.9})
    token_id = change(db, log, config_store.add_token, "tok-secret", ws, "Member", "bob")
    change(db, log, config_store.revoke_token, ws, token_id)
    assert not config_log.has_pending(db)

    with transaction(replica):
        config_log.apply(replica, log.records)
    assert every_table(replica) == every_table(db)
    assert not config_log.has_pending(replica)  # the replica's own triggers' rows are not changes to publish
    # no event holds a token's secret: only its hash
    assert not any("tok-secret" in orjson.dumps(r.event).decode() for r in log.records)
    changed = [ch["key"] for r in log.records for ch in r.event["data"]["changes"]]
    assert config_store.hash_token("tok-secret") in changed


def test_a_change_is_one_event_with_its_actor_after_the_rows_that_waited(db):
    log = FakeLog()  # the bootstrap rows wait in the outbox: the first change publishes them first, as the system's
    ws_id = "team-1"

    def create(conn):
        config_store.ensure_workspace(conn, ws_id, "Team")
        return config_store.add_token(conn, "t", ws_id, "Admin", "ann")

    change(db, log, create, actor=("tok-9", "Admin"))
    system, mine = log.records
    assert "actorid" not in system.event
    assert {ch["table"] for ch in system.event["data"]["changes"]} == {"workspaces", "tokens", "bootstrap_token"}
    assert (mine.event["actorid"], mine.event["actorrole"]) == ("tok-9", "Admin")
    assert [ch["table"] for ch in mine.event["data"]["changes"]] == ["workspaces", "tokens"]
    assert mine.event["workspaceid"] == ws_id
    assert config_log.versions(db, [("workspaces", ws_id)]) == [{"table": "workspaces", "key": ws_id, "version": 1}]


def test_apply_skips_an_older_version_and_an_expired_event(db, replica):
    log = FakeLog()
    log.publish(db)
    policy = change(db, log, config_store.add_policy, "default", "P", None, RULES)
    change(db, log, config_store.update_policy, "default", policy["id"], "P-new", None, RULES)
    with transaction(replica):
        config_log.apply(replica, log.records)
        config_log.apply(replica, log.records[:-1])  # a redelivery of older versions changes nothing
    assert config_store.get_policy(replica, "default", policy["id"])["name"] == "P-new"

    class Refused(Exception):
        pass

    # a change answered 503 (rolled back), whose event reached the log after its expiry all the same
    with pytest.raises(Refused), transaction(db):
        config_store.update_policy(db, "default", policy["id"], "never", None, RULES)
        (_, event), = config_log.pending_events(db, ("tok-1", "Admin"), 0, 5.0)
        raise Refused
    late = Record("config", 0, 100, c.CONFIG_CHANGED, event, command_expiry.expires_at_ms(event) + 1)
    with transaction(replica):
        config_log.apply(replica, [late])
    assert config_store.get_policy(replica, "default", policy["id"])["name"] == "P-new"


def test_rows_from_before_config_was_on_the_log_are_imported_once(tmp_path):
    conn = connect(f"sqlite:///{tmp_path / 'old.db'}")
    config_store.init(conn)
    config_store.ensure_workspace(conn, "default")
    config_store.add_policy(conn, "default", "old", None, RULES)  # written before the triggers existed
    stores.init(conn)
    assert not config_log.has_pending(conn)
    assert config_log.import_unlogged(conn) == 2
    assert config_log.import_unlogged(conn) == 0  # waiting in the outbox already
    FakeLog().publish(conn)
    assert config_log.import_unlogged(conn) == 0  # versioned now
    conn.close()


def test_a_table_that_gained_a_column_gets_triggers_that_carry_it(db):
    db.execute("ALTER TABLE policies ADD COLUMN owner TEXT")
    stores.init(db)
    FakeLog().publish(db)
    config_store.add_policy(db, "default", "P", None, RULES)
    (_, event), = config_log.pending_events(db, None, 0, 5.0)
    assert "owner" in event["data"]["changes"][0]["row"]


def test_the_contract_refuses_a_change_without_rows_shape():
    with pytest.raises(ValueError):
        c.ConfigChanged.model_validate({"changes": [{"table": "policies", "key": "p"}]})
