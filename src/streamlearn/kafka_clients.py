"""Kafka client configuration derived from :class:`Settings`, for both client libraries.

confluent-kafka (librdkafka) and aiokafka spell the same security settings differently;
this module is the one place that knows both spellings, so SASL/SSL set once in the
settings reaches every producer, consumer and admin client.
"""

from __future__ import annotations

import ssl
from typing import Any

from streamlearn.settings import Settings


def confluent_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for a producer, consumer or admin client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password:
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        config["ssl.certificate.location"] = str(settings.kafka_ssl_certfile)
    if settings.kafka_ssl_keyfile:
        config["ssl.key.location"] = str(settings.kafka_ssl_keyfile)
    if settings.kafka_ssl_key_password:
        config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    config.update(extra)
    return config


def aiokafka_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer and consumer constructors."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl_plain_username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password:
        config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                password=(
                    settings.kafka_ssl_key_password.get_secret_value()
                    if settings.kafka_ssl_key_password
                    else None
                ),
            )
        config["ssl_context"] = context
    config.update(extra)
    return config
