"""The embedded default: a single-node Apache Kafka (KRaft) from pinned Maven Central jars."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamlearn.kafka_local.broker import BrokerStatus, EmbeddedKafka, answers_metadata
from streamlearn.kafka_local.config import BrokerConfig
from streamlearn.kafka_local.exceptions import (
    BrokerStartError,
    ChecksumMismatchError,
    EmbeddedKafkaError,
    JarFetchError,
    JavaNotFoundError,
)
from streamlearn.kafka_local.jars import JarLock, PinnedJar, ensure_jars, load_lock
from streamlearn.kafka_local.java import find_java
from streamlearn.kafka_local.secure import (
    SecureMaterial,
    enable_acls,
    ensure_secure_material,
    existing_secure_material,
)
from streamlearn.ports import free_port
from streamlearn.settings import Settings
from streamlearn.settings_values import port_bounds

__all__ = [
    "BrokerConfig",
    "BrokerStartError",
    "BrokerStatus",
    "ChecksumMismatchError",
    "EmbeddedKafka",
    "EmbeddedKafkaError",
    "JarFetchError",
    "JarLock",
    "JavaNotFoundError",
    "PinnedJar",
    "answers_metadata",
    "broker_material",
    "embedded_kafka",
    "ensure_jars",
    "free_port",
    "load_lock",
]


def embedded_kafka(
    settings: Settings,
    *,
    port: int = 9092,
    data_dir: Path | None = None,
    on_fetch: Callable[[PinnedJar, int, int], None] | None = None,
    secure: bool = False,
    acls: bool = False,
) -> EmbeddedKafka:
    """An :class:`EmbeddedKafka` whose classpath is fetched and verified now.

    Java is checked first, so a machine without it fails fast instead of downloading
    the jars it could not run. ``secure``: SASL_SSL with SCRAM users (:mod:`.secure`); a
    data directory made secure once stays secure (never started again in PLAINTEXT).
    ``acls`` (implies ``secure``): Kafka's StandardAuthorizer and a SCRAM user per part
    (:func:`~streamlearn.kafka_local.secure.enable_acls`); it too stays on.
    """
    find_java()
    classpath = ensure_jars(settings.cache_dir, settings.maven_repository, on_fetch=on_fetch)
    directory = data_dir or settings.data_dir / "kafka"
    material = broker_material(directory, secure=secure, acls=acls)
    config = BrokerConfig(
        data_dir=directory, port=port, controller_port=0, secure=material,
        port_range=port_bounds(settings.port_range),
    )  # fmt: skip
    return EmbeddedKafka(config, classpath, heap=settings.kafka_heap)


def broker_material(directory: Path, *, secure: bool, acls: bool) -> SecureMaterial | None:
    """The secure material the broker of ``directory`` starts with (None: PLAINTEXT).

    A directory made secure stays secure, and one with ACLs keeps them, whatever is asked
    later. A broker already formatted without SCRAM users cannot gain them (users join the
    metadata when the storage is formatted), so asking for the secure mode there fails
    before any material is made: made first, it would turn every later start of that
    directory into a secure one, which would fail the same way.
    """
    material = existing_secure_material(directory)
    if (secure or acls) and material is None:
        if (BrokerConfig(data_dir=directory).log_dir / "meta.properties").exists():
            raise EmbeddedKafkaError(
                f"{directory} holds a broker formatted without SCRAM users; start the "
                "secure broker with another --data-dir"
            )
        material = ensure_secure_material(directory, "127.0.0.1")
    if acls and material is not None:
        from streamlearn.topology.acl_parts import PART_NAMES

        material = enable_acls(material, PART_NAMES)
    return material
