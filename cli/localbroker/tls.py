"""The local broker's TLS: with KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL its clients' listener serves the
certificate SCANLEDGER_BROKER_SSL_CERT with the key SCANLEDGER_BROKER_SSL_KEY (Kafka's PEM key store: one
file of the key and the chain, written into the node's directory), trusts KAFKA_SSL_CA_LOCATION (its PEM
trust store: the brokers of a cluster check each other with it) and, when the clients present a certificate
(KAFKA_SSL_CERTIFICATE_LOCATION), requires one signed by that CA from every client (mutual TLS)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cli.localbroker.errors import BrokerError

KEYSTORE = "keystore.pem"
PKCS8 = "-----BEGIN PRIVATE KEY-----"  # the only unencrypted key Kafka's PEM key store reads


@dataclass(frozen=True)
class BrokerTls:
    cert: Path
    key: Path
    trust: str | None  # the CA file, None: the JVM's trust store
    client_auth: bool


def broker_tls(settings) -> BrokerTls | None:
    """The local broker's TLS, or None for a listener without it; BrokerError for settings it cannot serve."""
    security = settings.kafka_security
    if not security.tls:
        return None
    if (problem := security.problem()) is not None:
        raise BrokerError(problem)
    cert, key = settings.broker_ssl_cert, settings.broker_ssl_key
    if cert is None or key is None:
        raise BrokerError(f"KAFKA_SECURITY_PROTOCOL={security.protocol}: the local broker needs its certificate:"
                          " set SCANLEDGER_BROKER_SSL_CERT and SCANLEDGER_BROKER_SSL_KEY (PEM files, a certificate"
                          " for 127.0.0.1 and its key), or point KAFKA_BOOTSTRAP_SERVERS at a Kafka that serves TLS")
    for name, path in (("SCANLEDGER_BROKER_SSL_CERT", cert), ("SCANLEDGER_BROKER_SSL_KEY", key)):
        if not path.is_file():
            raise BrokerError(f"{name}={path}: no such file")
    if PKCS8 not in key.read_text(errors="replace"):
        raise BrokerError(f"SCANLEDGER_BROKER_SSL_KEY={key}: Kafka reads an unencrypted PKCS#8 key ({PKCS8});"
                          f" convert it: openssl pkcs8 -topk8 -nocrypt -in {key} -out broker-key.pem")
    if security.certificate_location and not security.ca_location:
        raise BrokerError("mutual TLS on the local broker: set KAFKA_SSL_CA_LOCATION to the CA that signed"
                          " KAFKA_SSL_CERTIFICATE_LOCATION (the broker trusts it for the clients' certificates)")
    # the broker runs in its node's directory: a relative CA path is the caller's
    trust = str(Path(security.ca_location).resolve()) if security.ca_location else None
    return BrokerTls(cert, key, trust, bool(security.certificate_location))


def tls_lines(node_dir: Path, tls: BrokerTls) -> list[str]:
    lines = ["ssl.keystore.type=PEM", f"ssl.keystore.location={node_dir / KEYSTORE}"]
    if tls.trust:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={tls.trust}"]
    return lines + (["ssl.client.auth=required"] if tls.client_auth else [])


def write_keystore(node_dir: Path, tls: BrokerTls) -> None:
    """The key and the certificate chain in one file, readable by this user only."""
    path = node_dir / KEYSTORE
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(tls.key.read_text().strip() + "\n" + tls.cert.read_text().strip() + "\n")
    tmp.replace(path)
