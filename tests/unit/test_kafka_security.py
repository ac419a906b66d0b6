"""The Kafka security settings (issue 25): read from KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_*,
refused with a message naming the variable, mapped to confluent-kafka's settings, to Faust's credentials
(checked through the function Faust hands them to aiokafka with) and to the local broker's listener."""
from __future__ import annotations

import datetime
import ssl
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from cli.localbroker.broker import BrokerError, _server_properties, nodes, sasl_user
from cli.localbroker.tls import broker_tls
from services.adapters.kafka_client import client_config, refusal, security_config
from services.settings import KafkaSecurity, Settings
from streams.credentials import broker_credentials


@pytest.fixture()
def client_cert(tmp_path) -> tuple[str, str]:
    """A self-signed certificate and its key, as PEM files: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scanledger")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_the_environment_gives_the_security_settings(monkeypatch):
    for name, value in {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "scram-sha-512",
                        "KAFKA_SASL_USERNAME": "svc-ledger", "KAFKA_SASL_PASSWORD": " pa ss ",
                        "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem"}.items():
        monkeypatch.setenv(name, value)
    security = Settings.from_env().kafka_security
    assert security == KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "svc-ledger", " pa ss ", "/etc/ca.pem")
    assert security.sasl and security.tls
    assert " pa ss " not in repr(security)  # never in a log line


def test_no_security_settings_is_plaintext_as_before(monkeypatch):
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env(kafka_bootstrap="b1:9092,b2:9092")
    assert settings.kafka_security.problem() is None
    assert client_config(settings) == {"bootstrap.servers": "b1:9092,b2:9092", "security.protocol": "PLAINTEXT"}
    assert credentials_to_aiokafka_auth(broker_credentials(settings.kafka_security)) == {
        "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("security", "named"), [
    (KafkaSecurity("SASL_TLS"), "KAFKA_SECURITY_PROTOCOL=SASL_TLS"),
    (KafkaSecurity("SASL_PLAINTEXT", "GSSAPI", "u", "p"), "KAFKA_SASL_MECHANISM=GSSAPI"),
    (KafkaSecurity("SASL_SSL", "PLAIN", None, "p"), "KAFKA_SASL_USERNAME"),
    (KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", None), "KAFKA_SASL_PASSWORD"),
    (KafkaSecurity("PLAINTEXT", "PLAIN", "u", "p"), "KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    (KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", "p", "/etc/ca.pem"), "KAFKA_SSL_CA_LOCATION is set"),
    (KafkaSecurity("SSL", ca_location="/nonexistent/ca.pem"), "KAFKA_SSL_CA_LOCATION=/nonexistent/ca.pem"),
    (KafkaSecurity("SSL", key_location="/nonexistent/client.key"), "KAFKA_SSL_KEY_LOCATION=/nonexistent/client.key"),
])
def test_a_setting_that_cannot_work_is_named(security, named):
    assert named in security.problem()


def test_a_client_certificate_needs_its_key(client_cert):
    cert, key = client_cert
    assert "KAFKA_SSL_KEY_LOCATION" in KafkaSecurity("SSL", certificate_location=cert).problem()
    assert KafkaSecurity("SSL", certificate_location=cert, key_location=key).problem() is None


def test_sasl_ssl_maps_to_librdkafka_and_to_aiokafka_through_faust():
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "svc", "pw")
    settings = Settings(kafka_bootstrap="pkc-1.example.com:9092", kafka_security=security)
    assert client_config(settings, **{"group.id": "g"}) == {
        "bootstrap.servers": "pkc-1.example.com:9092", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "svc", "sasl.password": "pw", "group.id": "g"}
    auth = credentials_to_aiokafka_auth(broker_credentials(security))
    context = auth.pop("ssl_context")
    assert auth == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                    "sasl_plain_username": "svc", "sasl_plain_password": "pw"}
    # no CA file: the system's trust store, with the broker's name checked (Confluent Cloud, MSK)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_sasl_plaintext_sends_no_tls_settings():
    security = KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", "p")
    assert security_config(security) == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                         "sasl.username": "u", "sasl.password": "p"}
    auth = credentials_to_aiokafka_auth(broker_credentials(security))
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["ssl_context"]) == ("SASL_PLAINTEXT", "PLAIN",
                                                                                        None)


def test_mutual_tls_gives_the_ca_and_the_client_certificate(client_cert):
    cert, key = client_cert
    security = KafkaSecurity("SSL", ca_location=cert, certificate_location=cert, key_location=key,
                             key_password="kp")
    assert security_config(security) == {"security.protocol": "SSL", "ssl.ca.location": cert,
                                         "ssl.certificate.location": cert, "ssl.key.location": key,
                                         "ssl.key.password": "kp"}
    plain_key = KafkaSecurity("SSL", ca_location=cert, certificate_location=cert, key_location=key)
    auth = credentials_to_aiokafka_auth(broker_credentials(plain_key))
    assert auth["security_protocol"] == "SSL"
    # the context trusts the CA file given, and only it
    assert [c["subject"] for c in auth["ssl_context"].get_ca_certs()] == [((("commonName", "scanledger"),),)]


def test_what_the_broker_refuses_is_one_line_naming_the_setting():
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "svc", "pw", "/etc/ca.pem")
    refused = refusal(security, KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: Authentication "
                      "failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"))
    assert "KAFKA_SASL_PASSWORD" in refused and "KAFKA_SASL_USERNAME=svc" in refused and "pw" not in refused.split()
    unsupported = refusal(security, KafkaError(KafkaError._AUTHENTICATION, "SASL SCRAM-SHA-256 mechanism handshake "
                          "failed: Broker: Unsupported SASL mechanism: broker's supported mechanisms: PLAIN"))
    # (librdkafka's format: rd_kafka_handle_SaslHandshake in src/rdkafka_broker.c)
    assert "KAFKA_SASL_MECHANISM=SCRAM-SHA-256" in unsupported
    untrusted = refusal(security, KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed"))
    assert "KAFKA_SSL_CA_LOCATION=/etc/ca.pem" in untrusted
    assert refusal(security, KafkaError(KafkaError._TRANSPORT, "Connection refused")) is None  # retried, not refused
    # a broker requiring a client certificate (mutual TLS) sends an alert after the handshake (real broker's words)
    alert = KafkaError(KafkaError._TRANSPORT, "ssl://127.0.0.1:22351/bootstrap: Receive failed: error:0A000412:SSL "
                       "routines::ssl/tls alert bad certificate: SSL alert number 42 (after 10ms in state"
                       " APIVERSION_QUERY)")
    assert "requires a client certificate" in refusal(security, alert)
    assert "KAFKA_SSL_CERTIFICATE_LOCATION=/etc/c.pem" in refusal(replace(security, certificate_location="/etc/c.pem"),
                                                                 alert)
    assert refusal(KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", "p"), alert) is None


def test_the_local_broker_asks_for_sasl_with_the_settings_user(tmp_path):
    settings = Settings(data_dir=tmp_path, broker_port=30000,
                        kafka_security=KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "alice-secret"))
    [node] = nodes(settings)
    user = sasl_user(settings)
    conf = dict(line.split("=", 1) for line in _server_properties(node, [node], user).splitlines()
                if "=" in line and not line.startswith("#"))
    assert conf["listeners"] == "SASL_PLAINTEXT://127.0.0.1:30000,CONTROLLER://127.0.0.1:30001"
    assert conf["listener.security.protocol.map"] == "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert conf["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    assert 'user_alice="alice-secret"' in conf["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert sasl_user(Settings(data_dir=tmp_path)) is None  # PLAINTEXT: the default listener, unchanged


@pytest.mark.parametrize(("security", "named"), [
    (KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", 'p"; x'), "KAFKA_SASL_PASSWORD"),
    (KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u=v", "p"), "KAFKA_SASL_USERNAME"),
])
def test_the_local_broker_refuses_what_it_cannot_serve(tmp_path, security, named):
    with pytest.raises(BrokerError, match=named):
        sasl_user(Settings(data_dir=tmp_path, kafka_security=security))


def test_the_local_broker_serves_tls_with_its_certificate_and_the_ca(tmp_path, client_cert):
    cert, key = client_cert
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "alice", "alice-secret", ca_location=cert,
                             certificate_location=cert, key_location=key)
    settings = Settings(data_dir=tmp_path, broker_port=30000, kafka_security=security, broker_ssl_cert=Path(cert),
                        broker_ssl_key=Path(key))
    [node] = nodes(settings)
    conf = dict(line.split("=", 1) for line in _server_properties(node, [node], sasl_user(settings),
                                                                   broker_tls(settings)).splitlines()
                if "=" in line and not line.startswith("#"))
    assert conf["listeners"] == "SASL_SSL://127.0.0.1:30000,CONTROLLER://127.0.0.1:30001"
    assert conf["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert 'user_alice="alice-secret"' in conf["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert (conf["ssl.keystore.type"], conf["ssl.keystore.location"]) == ("PEM", str(node.dir / "keystore.pem"))
    assert (conf["ssl.truststore.type"], conf["ssl.truststore.location"]) == ("PEM", cert)
    assert conf["ssl.client.auth"] == "required"  # the clients present a certificate: every client must
    assert broker_tls(Settings(data_dir=tmp_path)) is None  # PLAINTEXT: no TLS


@pytest.mark.parametrize(("broker_cert", "security", "named"), [
    (False, KafkaSecurity("SSL"), "SCANLEDGER_BROKER_SSL_CERT and SCANLEDGER_BROKER_SSL_KEY"),
    (True, KafkaSecurity("SSL", certificate_location="{cert}", key_location="{key}"), "KAFKA_SSL_CA_LOCATION"),
    (True, KafkaSecurity("SASL_SSL", "PLAIN", "u"), "KAFKA_SASL_PASSWORD"),
])
def test_the_local_broker_refuses_tls_it_cannot_serve(tmp_path, client_cert, broker_cert, security, named):
    cert, key = client_cert
    security = replace(security, certificate_location=security.certificate_location and cert,
                       key_location=security.key_location and key)
    files = {"broker_ssl_cert": Path(cert), "broker_ssl_key": Path(key)} if broker_cert else {}
    with pytest.raises(BrokerError, match=named):
        broker_tls(Settings(data_dir=tmp_path, kafka_security=security, **files))


def test_the_local_broker_trusts_a_relative_ca_path_from_where_it_was_given(tmp_path, client_cert, monkeypatch):
    cert, key = client_cert
    monkeypatch.chdir(tmp_path)  # client_cert wrote client.pem here
    tls = broker_tls(Settings(data_dir=tmp_path / "data", kafka_security=KafkaSecurity("SSL", ca_location="client.pem"),
                              broker_ssl_cert=Path(cert), broker_ssl_key=Path(key)))
    assert tls.trust == str(tmp_path / "client.pem")


def test_the_local_broker_names_a_key_kafka_cannot_read(tmp_path, client_cert):
    cert, _ = client_cert
    pkcs1 = tmp_path / "rsa.key"
    pkcs1.write_text("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n")
    with pytest.raises(BrokerError, match=f"SCANLEDGER_BROKER_SSL_KEY={pkcs1}: Kafka reads an unencrypted PKCS#8"):
        broker_tls(Settings(data_dir=tmp_path, kafka_security=KafkaSecurity("SSL"), broker_ssl_cert=Path(cert),
                            broker_ssl_key=pkcs1))
