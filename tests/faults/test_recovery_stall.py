"""A worker whose table recovery cannot finish: the coordinator table's changelog ends in a transaction
marker, an offset the broker never delivers, so Faust waits for it for ever. The watchdog seeks the
partition again once, then exits with code 3 (its supervisor starts a fresh worker) and names, in its last
line, the partition and where its fetch stands, not a silent hang.

The worker is started as a user starts it: `scanledger worker` from another directory, with documented
settings only (SCANLEDGER_STALL_SECONDS short, so the test does not wait the default minute)."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

from confluent_kafka import Producer

from harness.faults.probes import kafka_settings
from harness.system import ROOT, kafka_env
from services.adapters.kafka_admin import ensure_topics
from services.settings import Settings


def _end_with_a_transaction_marker(settings: Settings, topic: str, partition: int) -> None:
    """One committed transactional record in `partition`: the log is then [record, commit marker]."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers,
                         "transactional.id": f"stall-probe-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b'"stall-probe"', value=None, partition=partition)  # a tombstone: no state
    producer.commit_transaction(30)


def test_a_recovery_that_reads_nothing_seeks_again_then_exits_naming_the_partition(kafka, tmp_path):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCANLEDGER_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env = {**base, **kafka_env(), "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": kafka,
           "SCANLEDGER_TOPIC_PREFIX": prefix, "SCANLEDGER_DATA_DIR": str(tmp_path / "data"),
           "SCANLEDGER_STALL_SECONDS": "3"}
    settings = kafka_settings(env)
    ensure_topics(settings)
    _end_with_a_transaction_marker(settings, settings.table_changelog, 0)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=env, cwd=elsewhere,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            code = worker.wait(timeout=300)  # a hang is what this test is about: fail, not wait for ever
        finally:
            if worker.poll() is None:
                worker.kill()
    text = log_path.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 3, text
    seek = [line for line in lines if "seeking it again" in line]
    assert len(seek) == 1, text
    assert "with every record it needs fetched" in seek[0], text  # the fetch is past the marker: drained
    last = lines[-1]
    assert "worker stalled, exiting so that it is restarted: table recovery read no changelog record" in last, text
    # need offset 1 (the marker), have 0 (the record), and the fetch already past the marker
    assert f"{settings.table_changelog}[0] need 1 have 0 position 2" in last, text
    assert f"{settings.table_changelog}[1]" not in last, text  # partitions it has read are not named
    assert "awaits" in last, text  # where recovery's tasks wait
