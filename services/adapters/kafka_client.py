"""The one place a confluent-kafka client's connection settings come from: the bootstrap servers, the
security settings (services.settings.KafkaSecurity: SASL, TLS) and where librdkafka logs. Every
producer, consumer and admin client of the project starts from `client_config`; `check_kafka` tries
them once before a process starts, so a refused password is one line naming it, not a hang.
"""
from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from services import logs
from services.settings import KafkaSecurity, Settings

CHECK_S = 15.0  # a broker that neither answers nor refuses in this long is left to the process's own retries

# the TLS alerts a broker sends a client whose certificate it refuses or misses (after the handshake: librdkafka
# reports them as transport errors): bad_certificate (42), certificate_required (116, TLS 1.3)
CLIENT_CERT_ALERTS = ("alert bad certificate", "alert certificate required")


class KafkaSettingError(Exception):
    """A Kafka setting that cannot work: the message names the variable to fix."""


def security_config(security: KafkaSecurity) -> dict[str, str]:
    """librdkafka's settings for this security (pure: no file is read, no broker asked)."""
    config = {"security.protocol": security.protocol}
    if security.sasl:
        config.update({"sasl.mechanism": security.mechanism, "sasl.username": security.username or "",
                       "sasl.password": security.password or ""})
    if security.tls:
        optional = {"ssl.ca.location": security.ca_location, "ssl.certificate.location": security.certificate_location,
                    "ssl.key.location": security.key_location, "ssl.key.password": security.key_password}
        config.update({k: v for k, v in optional.items() if v})
    return config


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A confluent-kafka client's settings: bootstrap servers, security, logging, then `extra`."""
    return {"bootstrap.servers": settings.bootstrap_servers, **security_config(settings.kafka_security),
            **logs.client_logging(), **extra}


def refusal(security: KafkaSecurity, error: KafkaError) -> str | None:
    """The one line for an error that retrying will not fix (the broker refused our credentials or our client
    certificate, or its certificate was not trusted), naming the setting to fix; None for any other error."""
    text = error.str()
    if error.code() == KafkaError._AUTHENTICATION:
        if "mechanism handshake failed" in text:  # librdkafka's words when the broker does not enable it
            return (f"the Kafka broker does not take KAFKA_SASL_MECHANISM={security.mechanism}"
                    f" (librdkafka: {text})")
        return (f"the Kafka broker refused KAFKA_SASL_USERNAME={security.username} with this KAFKA_SASL_PASSWORD"
                f" (SASL {security.mechanism}; librdkafka: {text})")
    if security.tls and any(alert in text for alert in CLIENT_CERT_ALERTS):
        given = security.certificate_location
        return (f"the Kafka broker refused KAFKA_SSL_CERTIFICATE_LOCATION={given}: no CA it trusts signed it"
                if given else "the Kafka broker requires a client certificate (mutual TLS): set"
                " KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION") + f" (librdkafka: {text})"
    if error.code() == KafkaError._SSL:
        return (f"TLS with the Kafka broker failed: check KAFKA_SSL_CA_LOCATION"
                f"{'' if not security.ca_location else '=' + security.ca_location} (librdkafka: {text})")
    return None


def check_kafka(settings: Settings, ask_broker: bool = True, wait_s: float = CHECK_S) -> None:
    """KafkaSettingError when the security settings are unusable or (`ask_broker`, with SASL or TLS) the
    broker refuses them. A broker that does not answer is not an error here: the processes wait for it
    (or answer 503) as they always do."""
    security = settings.kafka_security
    if (problem := security.problem()) is not None:
        raise KafkaSettingError(problem)
    if not ask_broker or security.protocol == "PLAINTEXT":
        return
    refused: list[str] = []

    def on_error(error: KafkaError) -> None:
        if (line := refusal(security, error)) is not None:
            refused.append(line)

    admin = AdminClient(client_config(settings, error_cb=on_error, log_level=0))
    deadline = time.monotonic() + wait_s
    while not refused and time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1)
            return
        except KafkaException:
            admin.poll(0)  # serves error_cb
    if refused:
        raise KafkaSettingError(refused[0])
