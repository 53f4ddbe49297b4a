"""Writing and reading ``Experiment`` records on the compacted ``experiments`` topic (what
``streamlearn experiments set|list`` do; workers follow the topic in
:mod:`streamlearn.serving.follower`)."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamlearn.kafka_clients import confluent_config, produce_confirmed
from streamlearn.serde import RegistryUnavailableError, SchemaSource, SerdeError
from streamlearn.serving.exceptions import InvalidExperiment, ServingError
from streamlearn.serving.experiments import Experiment
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import CatalogueTopic, TopicCatalogue
from streamlearn.topology.namespace import Namespace

TIMEOUT_S = 30.0
GROUP_PREFIX = "streamlearn-experiments-"
"""A reading's fresh group id is this and a random suffix, in the namespace (as the topics:
the ACL for these groups of one deployment does not reach another's on the same cluster)."""


def experiment_topic(settings: Settings) -> CatalogueTopic:
    return TopicCatalogue.from_settings(settings).topic("experiments")


def publish_experiment(settings: Settings, registry: SchemaSource, experiment: Experiment) -> None:
    """Produce ``experiment`` (keyed by its name) and wait until Kafka confirmed it."""
    entry = experiment_topic(settings)
    topic = entry.name
    value = entry.serde(registry).encode(experiment.to_record())
    try:
        produce_confirmed(settings, topic, experiment.name.encode(), value)
    except KafkaException as exc:
        raise ServingError(f"experiment {experiment.name} not confirmed by Kafka: {exc}") from exc


def delete_experiment(settings: Settings, name: str) -> None:
    """Produce the tombstone of experiment ``name`` and wait until Kafka confirmed it: the
    workers drop the experiment (their follower removes it from their book) and compaction
    removes its records."""
    topic = experiment_topic(settings).name
    try:
        produce_confirmed(settings, topic, name.encode(), None)
    except KafkaException as exc:
        raise ServingError(f"deleting experiment {name} not confirmed by Kafka: {exc}") from exc


def read_experiments(
    settings: Settings,
    registry: SchemaSource,
    ignored: list[str] | None = None,
    named: set[str] | None = None,
) -> list[Experiment]:
    """The current experiments, as the workers have them: the newest valid record of each
    name, read to the end now. A name's newest record that the workers ignore (not an
    experiment) is left out as they leave it out, and said in ``ignored`` (an older one a
    later record replaced is not: nothing can end that warning before compaction);
    ``named`` gets every name whose newest record is not a tombstone, ignored ones
    included (what ``experiments delete`` can delete). A registry that does not answer
    raises :class:`~streamlearn.serde.RegistryUnavailableError` (it was taken for "no
    experiments")."""
    entry = experiment_topic(settings)
    topic, serde = entry.name, entry.serde(registry)
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": Namespace(settings.topic_prefix).group(
                    f"{GROUP_PREFIX}{uuid.uuid4().hex[:8]}"
                ),
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            },
        )
    )
    current: dict[str, Experiment | None] = {}
    refused: dict[str, str] = {}
    """Name → why its newest record was ignored."""
    try:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise ServingError(f"topic {topic} not found; run `streamlearn topics apply`")
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=TIMEOUT_S
            )
            ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends if ends[p] > 0])
        pending = {p for p, end in ends.items() if end > 0}
        while pending:
            message = consumer.poll(TIMEOUT_S)
            if message is None:
                raise ServingError(f"timed out reading {topic}")
            if message.error():
                raise ServingError(f"reading {topic}: {message.error()}")
            key = (message.key() or b"").decode("utf-8", "replace")
            value = message.value()
            if value is None:
                current[key] = None
                refused.pop(key, None)
            else:
                try:
                    current[key] = Experiment.from_record(serde.decode(value))
                    refused.pop(key, None)
                except RegistryUnavailableError:
                    raise
                except (SerdeError, InvalidExperiment) as exc:
                    refused[key] = (
                        f"experiment {key}: record at offset {message.offset()} of "
                        f"partition {message.partition()} ignored (as the workers "
                        f"ignore it): {exc}"
                    )
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None and offset + 1 >= ends[partition]:
                pending.discard(partition)
    finally:  # a KafkaException goes on as it is: the command line says it in one line
        consumer.close()
    if ignored is not None:
        ignored += [refused[key] for key in sorted(refused)]
    if named is not None:
        named.update(refused, (key for key, e in current.items() if e is not None))
    return [e for _, e in sorted(current.items()) if e is not None]
