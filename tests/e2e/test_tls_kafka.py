"""Kafka over TLS (issue 25) on the local broker, its client listener serving a certificate a throwaway CA
signed (harness/certs.py): every client of the system (the API's producer, the worker's Faust consumer and
producer, the projector, the admin) verifies the broker against KAFKA_SSL_CA_LOCATION, and a compliance scan
ends exact over SSL, over SASL_SSL (SCRAM-SHA-256) and with mutual TLS. A CA that did not sign the broker's
certificate, or no client certificate where the broker requires one, is one line naming the setting, exit 2."""
from __future__ import annotations

import pytest

from cli import localbroker
from harness.certs import CA
from harness.faults.systems import Up
from harness.system import System, free_port
from services.settings import KafkaSecurity, Settings
from tests.e2e.test_secured_kafka import PASSWORD, USER, assert_exact_scan, start_refused


class Certs:
    def __init__(self, directory):
        self.ca = CA.create(directory, "test-ca")
        self.broker_cert, self.broker_key = self.ca.issue(directory, "broker", server=True)
        self.client_cert, self.client_key = self.ca.issue(directory, "client", server=False)
        self.other_ca = CA.create(directory, "other-ca")  # signed nothing the broker serves

    def broker_env(self) -> dict[str, str]:
        return {"SCANLEDGER_BROKER_SSL_CERT": str(self.broker_cert), "SCANLEDGER_BROKER_SSL_KEY": str(self.broker_key)}

    def ssl_env(self, ca: CA | None = None) -> dict[str, str]:
        return {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str((ca or self.ca).path)}

    def client_env(self) -> dict[str, str]:
        return {"KAFKA_SSL_CERTIFICATE_LOCATION": str(self.client_cert),
                "KAFKA_SSL_KEY_LOCATION": str(self.client_key)}


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def ssl_broker(tmp_path_factory, certs):
    """A local broker whose only client listener is SSL, its certificate signed by the test CA."""
    settings = Settings.from_env(data_dir=tmp_path_factory.mktemp("ssl-broker"), broker_port=free_port(2),
                                 kafka_bootstrap=None, broker_nodes=1,
                                 kafka_security=KafkaSecurity("SSL", ca_location=str(certs.ca.path)),
                                 broker_ssl_cert=certs.broker_cert, broker_ssl_key=certs.broker_key)
    localbroker.start(settings)
    props = (settings.broker_dir / "server.properties").read_text()
    assert "advertised.listeners=SSL://" in props and "listeners=PLAINTEXT" not in props, props
    yield settings.bootstrap_servers
    localbroker.stop(settings)


def test_the_processes_on_an_ssl_broker_give_an_exact_scan(ssl_broker, certs, tmp_path):
    system = System(ssl_broker, tmp_path / "system", SCANLEDGER_UNIT_RECORDS="700",
                    SCANLEDGER_REPLICATION_FACTOR="1", **certs.ssl_env())
    try:
        system.start()
        with system.client() as api:
            assert_exact_scan(api, seed=31)
    finally:
        system.stop()


@pytest.mark.parametrize("command", ["api", "worker", "projector", "up"])
def test_a_ca_that_did_not_sign_the_broker_is_one_line_naming_it_and_exit_2(ssl_broker, certs, tmp_path, command):
    untrusted = certs.ssl_env(certs.other_ca)
    code, lines = start_refused(command, {"KAFKA_BOOTSTRAP_SERVERS": ssl_broker, **untrusted}, tmp_path)
    assert code == 2 and len(lines) == 1, (code, lines)
    [line] = lines
    assert line.startswith("scanledger: ") and f"KAFKA_SSL_CA_LOCATION={certs.other_ca.path}" in line, line
    assert "Traceback" not in line, line
    assert not (tmp_path / "data").exists()  # nothing started


def test_scanledger_up_on_its_local_broker_over_sasl_ssl_with_scram_gives_an_exact_scan(certs, tmp_path):
    up = Up(tmp_path / "up", rows=2000)
    up.env.update({**certs.broker_env(), **certs.ssl_env(), "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                   "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_USERNAME": USER,
                   "KAFKA_SASL_PASSWORD": PASSWORD})
    try:
        up.start()
        props = (tmp_path / "up" / "kafka" / "server.properties").read_text()
        assert "advertised.listeners=SASL_SSL://" in props and "listener.name.sasl_ssl.plain" in props, props
        with up.client() as api:
            assert_exact_scan(api, seed=32)
        assert up.ctrl_c() == [] and up.exit_codes == [0], up.logs()
    finally:
        up.stop()


def test_scanledger_up_with_mutual_tls_gives_an_exact_scan_and_refuses_a_client_without_a_certificate(
        certs, tmp_path):
    up = Up(tmp_path / "up", rows=2000)
    up.env.update(certs.broker_env(), **certs.ssl_env(), **certs.client_env())
    try:
        up.start()
        props = (tmp_path / "up" / "kafka" / "server.properties").read_text()
        assert "ssl.client.auth=required" in props, props
        with up.client() as api:
            assert_exact_scan(api, seed=33)
        bootstrap = f"127.0.0.1:{up.env['SCANLEDGER_BROKER_PORT']}"
        code, lines = start_refused("worker", {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, **certs.ssl_env()}, tmp_path)
        assert code == 2 and len(lines) == 1 and "KAFKA_SSL_CERTIFICATE_LOCATION" in lines[0], (code, lines)
        assert up.ctrl_c() == [] and up.exit_codes == [0], up.logs()
    finally:
        up.stop()
