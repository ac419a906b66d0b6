"""A broker outage is a 503, never a lie: a command the API cannot write is answered 503 with
Retry-After within the command timeout, and what it asked for never happens, even once the
broker is back. On a broker of its own, which the test stops and starts again."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from cli import localbroker
from harness.data import RULES
from harness.system import System, free_port
from services.domain import command_expiry
from services.domain import contracts as c
from services.domain.envelope import decode
from services.settings import Settings
from tests.e2e.monitor_fixtures import wait_finished

TIMEOUT_S = 3


def scan(api) -> str:
    r = api.post("/api/scan/run")  # a monitor scan of the default workspace (no monitors: done at once)
    assert r.status_code == 202, r.text
    execution = r.json()["data"]["executionId"]
    # Readable once the projector has the command: at once, or a moment later when it lags more
    # than the API's 2 s wait, as it may just after the restart below (README, POST /api/scan/run).
    deadline = time.monotonic() + 60
    while api.get(f"/api/scan/status/{execution}").status_code == 404:
        assert time.monotonic() < deadline, f"scan {execution} never became readable"
        time.sleep(0.1)
    wait_finished(api, execution)
    return execution


def command_records(bootstrap: str, topic: str) -> list[tuple[dict, int]]:
    """Every record of the commands topic: (command, record timestamp in ms)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "outage-test", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
        out, left = [], sum(ends.values())
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            for m in consumer.consume(100, timeout=0.5):
                if not m.error():
                    out.append((decode(m.value()), m.timestamp()[1]))
                    left -= 1
        assert not left, f"{left} command records not read"
        return out
    finally:
        consumer.close()


def test_a_command_the_broker_cannot_take_is_a_503_and_never_happens(tmp_path):
    broker = Settings.from_env(data_dir=tmp_path / "broker", broker_port=free_port(2), kafka_bootstrap=None)
    localbroker.start(broker)
    system = System(broker.bootstrap_servers, tmp_path / "system", SCANLEDGER_COMMAND_TIMEOUT=str(TIMEOUT_S),
                    SCANLEDGER_REPLICATION_FACTOR="1")  # its own single broker, whatever the suite's is
    try:
        system.start()
        with system.client() as api:
            before = scan(api)
            (run,) = api.get("/api/operations").json()["items"]
            kept = api.post("/api/policies", json={"name": "kept", "rules": RULES})
            assert kept.status_code == 201, kept.text
            kept = kept.json()

            localbroker.stop(broker)
            # commands, and config changes (on the config topic before they commit)
            for method, path, body in (("POST", "/api/scan/run", None),
                                       ("DELETE", f"/api/operations/{run['id']}", None),
                                       ("POST", "/api/policies", {"name": "refused", "rules": RULES}),
                                       ("DELETE", f"/api/policies/{kept['id']}", None)):
                r = api.request(method, path, json=body)  # how fast the 503 comes is bench work, not a test's
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == str(TIMEOUT_S)
                body = r.json()
                assert set(body) == {"error", "message"} and body["error"] == "UNAVAILABLE" and body["message"]

            localbroker.start(broker)
            system.stop()  # whatever the outage did to the other processes, they start afresh
            system.start()
            after = scan(api)
            time.sleep(2)  # time enough for anything still queued anywhere to reach the log
            runs = api.get("/api/operations").json()["items"]
            # the refused scan never ran and the refused delete never happened; the refused
            # scan's run id is a gap
            assert [i["id"] for i in runs] == [run["id"] + 2, run["id"]], runs
            assert api.get(f"/api/operations/{run['id']}").json()["result"] == "success"
            # the refused config changes were not made, and their events, if they reached the log late, expired
            assert [p["id"] for p in api.get("/api/policies").json()["items"]] == [kept["id"]]

        written = command_records(broker.bootstrap_servers, system.env["SCANLEDGER_TOPIC_PREFIX"] + ".commands")
        counted = [cmd for cmd, stamp in written if not command_expiry.is_expired(cmd, stamp)]
        assert {(cmd["type"], cmd["subject"]) for cmd in counted} == {(c.RUN_SCAN, before), (c.RUN_SCAN, after)}
        assert all(command_expiry.EXPIRES in cmd for cmd, _ in written)
        changes = command_records(broker.bootstrap_servers, system.env["SCANLEDGER_TOPIC_PREFIX"] + ".config")
        made = [ch for event, stamp in changes if not command_expiry.is_expired(event, stamp)
                for ch in event["data"]["changes"] if ch["table"] == "policies"]
        assert [(ch["key"], ch["row"]["name"]) for ch in made] == [(kept["id"], "kept")]
    finally:
        system.stop()
        localbroker.stop(broker)
