"""The topic catalogue: what the code knows of a topic, loaded once from topics.yaml.

``catalogue.topic("events.clean")`` gives the topic's Kafka name in the namespace, what its
key is, its value serde and how keys map to partitions. Nothing else in ``src/`` spells a
topic's name or pairs a topic with a schema: a topic added, renamed (by namespace) or given
another schema changes here and in ``topology/topics.yaml`` only.

The topology file is the one named by ``STREAMLEARN_TOPOLOGY_FILE``, or the one shipped with
streamlearn (the repository's ``topology/topics.yaml``, packaged as data).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from streamlearn.kafka_clients import key_partition
from streamlearn.serde import AvroSerde, SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.exceptions import TopologyError
from streamlearn.topology.loader import load_topology
from streamlearn.topology.model import TopicSpec, Topology
from streamlearn.topology.namespace import Namespace

SHIPPED_TOPOLOGY = Path(__file__).with_name("topics.yaml")


def topology_path(settings: Settings) -> Path:
    """The topology file these settings name (the shipped one by default)."""
    return settings.topology_file or SHIPPED_TOPOLOGY


@cache
def _load(path: Path) -> Topology:
    return load_topology(path)


@dataclass(frozen=True)
class CatalogueTopic:
    """One declared topic as the code uses it."""

    spec: TopicSpec
    name: str
    """The Kafka name (namespace prefix + declared name)."""

    @property
    def logical(self) -> str:
        """The name declared in topics.yaml."""
        return self.spec.name

    @property
    def key(self) -> str:
        """What the UTF-8 key of every record is (e.g. "user id")."""
        return self.spec.key

    @property
    def value_schema(self) -> str:
        if self.spec.value_schema is None:
            raise TopologyError(f"topic {self.logical} has no Avro value schema")
        return self.spec.value_schema

    def serde(
        self,
        registry: SchemaSource,
        *,
        logical_types: bool = True,
        fields: Collection[str] | None = None,
    ) -> AvroSerde:
        """The Avro serde of this topic's values (subject ``<name>-value``); see
        :meth:`AvroSerde.for_topic` for ``logical_types`` and ``fields``."""
        return AvroSerde.for_topic(
            registry, self.name, self.value_schema, logical_types=logical_types, fields=fields
        )

    @staticmethod
    def partition_of(key: bytes, partitions: int) -> int:
        """The partition a producer of streamlearn puts ``key`` in (Kafka's default
        partitioner: murmur2 of the key's bytes)."""
        return key_partition(key, partitions)


class TopicCatalogue:
    """Every topic of a topology, named in one namespace."""

    def __init__(self, topology: Topology, namespace: Namespace | None = None) -> None:
        self.topology = topology
        self.namespace = namespace or Namespace()
        self._topics = {
            spec.name: CatalogueTopic(spec, self.namespace.topic(spec.name))
            for spec in topology.topics
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicCatalogue:
        """The catalogue of the settings' topology file in their namespace (the file is
        parsed once per process)."""
        return cls(_load(topology_path(settings).resolve()), Namespace(settings.topic_prefix))

    def topic(self, logical: str) -> CatalogueTopic:
        found = self._topics.get(logical)
        if found is None:
            raise TopologyError(
                f"topic {logical!r} is not declared in the topology (declared: "
                f"{', '.join(sorted(self._topics))})"
            )
        return found

    def by_name(self, name: str) -> CatalogueTopic | None:
        """The declared topic whose Kafka name is ``name`` in this namespace, if any."""
        logical = self.namespace.logical(name)
        return None if logical is None else self._topics.get(logical)

    def __iter__(self) -> Iterator[CatalogueTopic]:
        return iter(self._topics.values())
