"""Reading ``model.state``: the newest verifiable snapshot of each model.

The learner resumes from it after a start or a rebalance. The topic is compacted by model
name, so it holds the latest snapshot per model (and, until compaction, older ones); the
newest one that verifies wins. A newer one that fails verification is counted and
reported: the learner resumes from the last good one but numbers its next version after
the highest version seen, so workers, which keep the highest verified version, move on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streamlearn.kafka_clients import confluent_config
from streamlearn.models import SnapshotRejected, verify_snapshot
from streamlearn.models.snapshot import SigningKey
from streamlearn.serde import AvroSerde, DecodeError
from streamlearn.settings import Settings

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 60.0
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024


@dataclass
class ModelStateView:
    """What ``model.state`` says about some models, read from its start to its end."""

    newest: dict[str, dict[str, Any]] = field(default_factory=dict)
    """model name → newest snapshot that verified."""
    highest_version: dict[str, int] = field(default_factory=dict)
    """model name → highest version seen, verified or not."""
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    """(model name, version, reason) of snapshots that failed verification."""


def read_model_state(
    settings: Settings, serde: AvroSerde, names: Iterable[str], key: SigningKey
) -> ModelStateView:
    """Blocking (a thread in the agent): every record of ``model.state`` for ``names``."""
    wanted = set(names)
    topic = settings.topic_prefix + "model.state"
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": "streamlearn-model-state-reader",  # never commits
                "enable.auto.commit": False,
                "fetch.max.bytes": MAX_SNAPSHOT_BYTES * 2,
                "max.partition.fetch.bytes": MAX_SNAPSHOT_BYTES,
            },
        )
    )
    view = ModelStateView()
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in partitions}  # fmt: skip
        remaining = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while remaining:
            if time.monotonic() > deadline:
                raise KafkaException(f"{topic}: not read to its end in {READ_TIMEOUT_S:.0f}s")
            for message in consumer.consume(100, timeout=0.5):
                if message.error() is not None:
                    raise KafkaException(message.error())
                partition, offset = message.partition(), message.offset()
                if partition is not None and offset is not None and offset + 1 >= ends[partition]:
                    remaining.discard(partition)
                _consider(view, serde, message, wanted, key)
    finally:
        consumer.close()
    return view


def _consider(
    view: ModelStateView, serde: AvroSerde, message: Any, wanted: set[str], key: SigningKey
) -> None:
    if message.value() is None or (message.key() or b"").decode() not in wanted:
        return
    try:
        snapshot = serde.decode(message.value(), topic=message.topic(), offset=message.offset())
    except DecodeError as exc:
        log.error("undecodable record on model.state: %s", exc)
        return
    name, version = snapshot["model_name"], int(snapshot["version"])
    view.highest_version[name] = max(view.highest_version.get(name, 0), version)
    try:
        verify_snapshot(snapshot, key)
    except SnapshotRejected as exc:
        view.rejected.append((name, version, exc.reason))
        log.error("snapshot %s v%d on model.state rejected: %s", name, version, exc)
        return
    current = view.newest.get(name)
    if current is None or version > int(current["version"]):
        view.newest[name] = snapshot
