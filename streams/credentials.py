"""The security settings (services.settings.KafkaSecurity) as Faust's `broker_credentials`, which Faust
hands to every aiokafka client it makes (consumer, producer, topic admin):
faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth."""
from __future__ import annotations

import ssl

import faust

from services.settings import KafkaSecurity


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """Verifies the broker against KAFKA_SSL_CA_LOCATION (else the system's trust store) and presents
    the client certificate when one is set (mTLS)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=security.ca_location)
    if security.certificate_location:
        context.load_cert_chain(security.certificate_location, security.key_location, security.key_password)
    return context


def broker_credentials(security: KafkaSecurity) -> faust.SASLCredentials | faust.SSLCredentials | None:
    if security.sasl:
        return faust.SASLCredentials(username=security.username, password=security.password,
                                     mechanism=security.mechanism,
                                     ssl_context=ssl_context(security) if security.tls else None)
    if security.tls:
        return faust.SSLCredentials(ssl_context(security))
    return None
