"""Secured Kafka (issue 25): with the broker's only client listener on SASL_PLAINTEXT, every client of the
system (the API's producer, the worker's Faust consumer and producer, the projector, the admin that makes
the topics) authenticates, and a compliance scan ends exact; started as the README tells a user, with
`scanledger up` on its local broker (SCRAM-SHA-256) and as separate processes on a SASL broker (PLAIN).
A refused password, or a setting that cannot work, is one line naming it and exit 2, nothing started."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

from cli import localbroker
from harness import data
from harness.faults.systems import Up
from harness.system import ROOT, System, free_port
from services.settings import KafkaSecurity, Settings
from tests.e2e.helpers import all_violations, policy, scan_once

USER, PASSWORD = "scanner", "s3cret-Pa55"


def sasl_env(mechanism: str, password: str = PASSWORD) -> dict[str, str]:
    return {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD": password}


def assert_exact_scan(api, seed: int) -> list[dict]:
    """A compliance scan over the API, worker and projector gives exactly the known violations and score;
    its violations."""
    rows = data.transactions(2000, seed=seed)
    want = data.expected(rows)
    total = sum(len(v) for v in want.values())
    scan_id, scan = scan_once(api, rows, policy(api)["id"])
    assert scan["status"] == "completed", scan
    assert scan["record_count"] == 2000 and scan["violation_count"] == total
    assert scan["compliance_score"] == data.score(2000, data.by_severity(want))
    violations = all_violations(api, scan_id)
    assert len(violations) == total == len({v["id"] for v in violations})
    for rule_id, signatures in want.items():
        assert sorted(v["signature"] for v in violations if v["rule_id"] == rule_id) == sorted(signatures), rule_id
    return violations


def test_scanledger_up_on_its_local_broker_with_scram_gives_an_exact_scan(tmp_path):
    up = Up(tmp_path / "up", rows=2000)
    up.env.update(sasl_env("SCRAM-SHA-256"))
    try:
        up.start()
        props = (tmp_path / "up" / "kafka" / "server.properties").read_text()
        # the clients' only listener asks for SASL
        assert "advertised.listeners=SASL_PLAINTEXT://" in props and "listeners=PLAINTEXT" not in props, props
        with up.client() as api:
            assert_exact_scan(api, seed=21)
        assert up.ctrl_c() == [] and up.exit_codes == [0], up.logs()
    finally:
        up.stop()


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    """A local broker whose client listener is SASL_PLAINTEXT, knowing USER by PLAIN and SCRAM."""
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("sasl-broker"), broker_port=free_port(2),
                                 kafka_bootstrap=None, broker_nodes=1,
                                 kafka_security=KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", USER, PASSWORD))
    localbroker.start(settings)
    yield settings.bootstrap_servers
    localbroker.stop(settings)


def test_the_processes_on_a_sasl_broker_with_plain_give_an_exact_scan(sasl_broker, tmp_path):
    system = System(sasl_broker, tmp_path / "system", SCANLEDGER_UNIT_RECORDS="700",
                    SCANLEDGER_REPLICATION_FACTOR="1", **sasl_env("PLAIN"))
    try:
        system.start()
        with system.client() as api:
            violations = assert_exact_scan(api, seed=22)
        # a consumer of your own reads them with the same settings (examples/consumer.py, as the README runs it)
        env = {k: v for k, v in system.env.items() if k != "PYTHONPATH"}
        run = subprocess.run([sys.executable, str(ROOT / "examples" / "consumer.py"), "--from-beginning",
                              "--count", str(len(violations))], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert sorted(re.search(r" id=(\S+) ", x).group(1) for x in run.stdout.splitlines()) == sorted(
            v["id"] for v in violations)
    finally:
        system.stop()


def start_refused(command: str, env: dict[str, str], tmp_path) -> tuple[int, list[str]]:
    """`scanledger <command>` from a working directory of its own: its exit code and its output's lines."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SCANLEDGER_"))}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**base, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
           "SCANLEDGER_DATA_DIR": str(tmp_path / "data"), "SCANLEDGER_TOPIC_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
           "SCANLEDGER_PORT": str(free_port()), **env}
    done = subprocess.run([sys.executable, "-m", "cli.main", command], env=env, cwd=cwd, capture_output=True,
                          text=True)
    return done.returncode, [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
@pytest.mark.parametrize("command", ["api", "worker", "projector", "up"])
def test_a_refused_password_is_one_line_naming_it_and_exit_2(sasl_broker, tmp_path, command, mechanism):
    code, lines = start_refused(command, {"KAFKA_BOOTSTRAP_SERVERS": sasl_broker,
                                          **sasl_env(mechanism, password="not-the-password")}, tmp_path)
    assert code == 2 and len(lines) == 1, (code, lines)
    [line] = lines
    assert line.startswith("scanledger: ") and "KAFKA_SASL_PASSWORD" in line and mechanism in line, line
    assert "Traceback" not in line and "not-the-password" not in line, line
    assert not (tmp_path / "data").exists()  # nothing started (not even up's admin token)


def test_up_on_a_local_broker_formatted_for_another_password_says_so_and_leaves_it_stopped(tmp_path):
    """SCRAM users are written when the local broker's storage is formatted: another password later is refused
    by the broker, and up says which setting, exits 2 and stops the broker it started."""
    broker = Settings.from_env(data_dir=tmp_path / "data", broker_port=free_port(2), kafka_bootstrap=None,
                               broker_nodes=1,
                               kafka_security=KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", USER, PASSWORD))
    localbroker.start(broker)
    localbroker.stop(broker)
    code, lines = start_refused("up", {"SCANLEDGER_BROKER_PORT": str(broker.broker_port),
                                       **sasl_env("SCRAM-SHA-256", password="another-password")}, tmp_path)
    assert code == 2, (code, lines)
    errors = [line for line in lines if line.startswith("scanledger: ")]
    assert len(errors) == 1 and "KAFKA_SASL_PASSWORD" in errors[0], lines
    # besides it, only up's own progress: what it started, then that it stopped it (as any start that fails)
    assert lines[0].startswith("starting the local Kafka broker"), lines
    assert set(lines[1:]) - set(errors) <= {"stopping …", "scan-ledger stopped."}, lines
    assert not localbroker.status(broker)["running"]


MISSING_CA = "/nonexistent/ca.pem"
BAD = {
    "unknown protocol": ({"KAFKA_SECURITY_PROTOCOL": "SASL_TLS"}, "KAFKA_SECURITY_PROTOCOL=SASL_TLS"),
    "unknown mechanism": ({**sasl_env("GSSAPI")}, "KAFKA_SASL_MECHANISM=GSSAPI"),
    "SASL without a user": ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": PASSWORD},
                            "KAFKA_SASL_USERNAME"),
    "missing CA file": ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SSL_CA_LOCATION": MISSING_CA,
                         "KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD": PASSWORD},
                        f"KAFKA_SSL_CA_LOCATION={MISSING_CA}"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("command", ["worker", "up"])
def test_a_kafka_setting_that_cannot_work_is_one_line_naming_it_and_exit_2(sasl_broker, tmp_path, command, case):
    env, named = BAD[case]
    code, lines = start_refused(command, {"KAFKA_BOOTSTRAP_SERVERS": sasl_broker, **env}, tmp_path)
    assert code == 2 and len(lines) == 1, (code, lines)
    assert lines[0].startswith("scanledger: ") and named in lines[0] and "Traceback" not in lines[0], lines
    assert not (tmp_path / "data").exists()
