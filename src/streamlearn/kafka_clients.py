"""Kafka client configuration derived from :class:`Settings`, for both client libraries.

confluent-kafka (librdkafka) and aiokafka spell the same security settings differently;
this module is the one place that knows both spellings, so SASL/SSL set once in the
settings reaches every producer, consumer and admin client.

It is also the one place that says how keys map to partitions. Agents keep state
co-partitioned with their inputs (a user's events, a request's prediction and feedback
meet in one partition number), which holds only if every producer, whichever library it
uses, puts a key where Kafka's Java client puts it: ``toPositive(murmur2(key)) % n``.
librdkafka's default (``consistent_random``, CRC32) does not; every confluent-kafka
producer therefore starts from :func:`producer_config`, and everything that picks a
partition itself calls :func:`key_partition`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamlearn.exceptions import ConfigurationError
from streamlearn.log_repeats import LIBRDKAFKA_LOG
from streamlearn.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka import Producer

DEFAULT_MESSAGE_BYTES = 1_048_588
"""Kafka's default ``max.message.bytes``, for a topic the topology sets none on."""
AGENT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""What an agent's producer sends at most: model.state's ``max.message.bytes`` (snapshots
of MBs)."""
KEY_PARTITIONER = "murmur2_random"
"""librdkafka's name for the Java client's partitioner (murmur2; keyless records spread)."""


def java_key_partition(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as Kafka's Java client computes it
    (aiokafka's murmur2, in Python: ~3 µs a key)."""
    from aiokafka.partitioner import murmur2 as python_murmur2

    return int(python_murmur2(key) & 0x7FFFFFFF) % partitions


key_partition: Callable[[bytes, int], int]
try:
    from confluent_kafka.cimpl import murmur2 as c_murmur2
except ImportError:  # confluent-kafka before 2.13, which pyproject.toml allows
    key_partition = java_key_partition
else:
    key_partition = c_murmur2
"""``key_partition(key, partitions)``: :func:`java_key_partition`'s answer, by
librdkafka's ``murmur2`` partitioner in C where the client has it (0.08 µs a key, paid for
every output record with a new key: label-join's examples, the learning lab's
predictions)."""


LOG_NOTICE = 5
"""syslog's level numbers, which librdkafka's ``log_level`` takes (6 is its default)."""
LOG_CRITICAL = 2
_log_level = LOG_NOTICE


def quiet_client_logs() -> None:
    """librdkafka clients made from now on in this process log nothing below critical: for
    commands that answer and exit, whose failures reach the user as one line anyway (an
    admin client waiting for a broker that is not there logs each reconnection, ~20 a
    second)."""
    global _log_level
    _log_level = LOG_CRITICAL


def confluent_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for a producer, consumer or admin client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        # librdkafka's notices, warnings and errors, not its informational lines: those
        # went to the user's terminal as is, e.g. "Purging 1 unserved events from
        # background queue" when an admin client is released right after its answer
        # (1 in 30, a race in librdkafka, harmless).
        "log_level": _log_level,
    }
    if _log_level != LOG_CRITICAL:
        # A long-running process: librdkafka's lines through logging, each kind once per
        # window (a client without its broker says the same thing twenty times a second).
        config["logger"] = LIBRDKAFKA_LOG
    _last_settings[:] = [settings]
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


_last_settings: list[Settings] = []
"""The settings this process's latest Kafka client was configured from."""
SASL_HINT = (
    "check STREAMLEARN_KAFKA_SASL_USERNAME, STREAMLEARN_KAFKA_SASL_PASSWORD and "
    "STREAMLEARN_KAFKA_SASL_MECHANISM"
)
"""What to check when the brokers refuse the login."""
LOGIN_PROBE_S = 5.0


def refuse_a_refused_login(settings: Settings) -> None:
    """Raise :class:`ConfigurationError` when the brokers refuse ``settings``' login (SASL):
    a setting to fix, not an outage to wait out. A server would otherwise start, say ok on
    /healthz and fail every request; a broker that is away is not refused (None below)."""
    refused = login_failure(settings)
    if refused is not None:
        raise ConfigurationError(f"Kafka: authentication failed: {refused} ({SASL_HINT})")


def login_failure(settings: Settings | None = None, wait_s: float = LOGIN_PROBE_S) -> str | None:
    """Why Kafka clients with ``settings`` (default: this process's latest client's)
    cannot log in (SASL), asked of the brokers by a client of its own: librdkafka says so
    only to a client's error callback, which a waiting admin call never serves, and the
    call then fails as "Broker transport failure". None when SASL is not used, the login
    works (known as soon as metadata comes back), or no broker answers within ``wait_s``."""
    chosen = settings or (_last_settings[0] if _last_settings else None)
    if chosen is None or not chosen.kafka_security_protocol.startswith("SASL"):
        return None
    from confluent_kafka import KafkaError, KafkaException, Producer

    failures: list[str] = []

    def noted(error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            failures.append(error.str())

    try:
        probe = Producer(confluent_config(chosen, error_cb=noted))
    except KafkaException:
        return None
    deadline = time.monotonic() + wait_s
    while not failures and time.monotonic() < deadline:
        try:
            probe.list_topics(timeout=0.5)
            return None  # logged in
        except KafkaException:
            probe.poll(0)  # serves the error callback
    return failures[0] if failures else None


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for a producer: :func:`confluent_config` with the Java
    client's partitioner, which ``extra`` cannot change."""
    config = confluent_config(settings, **extra)
    config["partitioner"] = KEY_PARTITIONER
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


def may_not_describe(user: str | None, topic: str, answer: str = "") -> str:
    """Why Kafka would not tell a client of ``topic``: a user without DESCRIBE on a topic is
    answered as if it did not exist (TOPIC_AUTHORIZATION_FAILED, or left out of a full
    metadata answer), and a part run as another part's user, or without its ACLs, was told
    to apply the topology of a cluster that had it. ``answer``: what Kafka said, if it
    said anything."""
    who = f"Kafka user {user!r}" if user else "this Kafka principal"
    said = f" ({answer})" if answer else ""
    return (
        f"{who} may not describe topic {topic}{said}: give this part its own user "
        "(STREAMLEARN_KAFKA_SASL_USERNAME and _PASSWORD) and the ACLs `streamlearn acls "
        "plan` lists for it (`streamlearn acls apply`, as the operator); Kafka answers so "
        "for a missing topic too: `streamlearn topics apply` creates it"
    )


PRODUCE_TIMEOUT_S = 30.0


def confirming_producer(settings: Settings, **extra: Any) -> Producer:
    """An idempotent ``acks=all`` producer for :func:`produce_one_confirmed`. Getting its
    producer id takes the broker about half a second: create it early when that matters
    (a replay creates it before learning)."""
    from confluent_kafka import Producer

    producer = Producer(
        producer_config(settings, **{"acks": "all", "enable.idempotence": True, **extra})
    )
    producer.poll(0)
    return producer


def produce_one_confirmed(
    producer: Producer, topic: str, key: bytes, value: bytes | None
) -> tuple[int, int]:
    """Produce one record (None: a tombstone) and wait until Kafka confirmed it; its
    (partition, offset)."""
    from confluent_kafka import KafkaException

    outcome: list[Any] = []

    def report(error: Any, message: Any) -> None:
        outcome.append(error if error is not None else (message.partition(), message.offset()))

    producer.produce(topic, key=key, value=value, on_delivery=report)
    left = producer.flush(PRODUCE_TIMEOUT_S)
    if left or not outcome or not isinstance(outcome[0], tuple):
        reason = outcome[0] if outcome else f"no confirmation in {PRODUCE_TIMEOUT_S:.0f}s"
        raise KafkaException(f"{topic}: record not confirmed by Kafka: {reason}")
    partition, offset = outcome[0]
    return int(partition), int(offset)


def produce_confirmed(
    settings: Settings, topic: str, key: bytes, value: bytes | None, **extra: Any
) -> tuple[int, int]:
    """Produce one record (idempotent, ``acks=all``) and wait until Kafka confirmed it;
    returns its (partition, offset). For commands that write a single record (an
    experiment, a replayed model), not for streams."""
    return produce_one_confirmed(confirming_producer(settings, **extra), topic, key, value)
