"""Decoding the followed topics' records, model snapshots without their payload.

A ``ModelSnapshot`` carries the pickled model. The dashboard shows a snapshot's metadata
only and never loads a model: it reads ``model.state`` with a reader schema that has just
the metadata fields (:data:`SNAPSHOT_FIELDS`). Avro's schema resolution skips the writer's
other fields, so the payload is never part of a decoded record, let alone unpickled.
"""

from __future__ import annotations

from typing import Any

from streamlearn.dashboard.state import FOLLOWED, Decoded
from streamlearn.serde import AvroSerde, SchemaSource, load_schema, value_subject
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

SNAPSHOT_FIELDS = (
    "model_name",
    "version",
    "parent_version",
    "created_ts",
    "trained_examples",
    "metrics",
)


def snapshot_metadata_schema() -> dict[str, Any]:
    """``ModelSnapshot`` with only :data:`SNAPSHOT_FIELDS` (a valid reader of any version)."""
    schema = load_schema("ModelSnapshot")
    schema["fields"] = [f for f in schema["fields"] if f["name"] in SNAPSHOT_FIELDS]
    schema["doc"] = "A snapshot's metadata, as the dashboard reads it (payload skipped)."
    return schema


class Decoders:
    """The serde of each followed topic, by its Kafka name in the settings' namespace."""

    def __init__(self, settings: Settings, registry: SchemaSource) -> None:
        catalogue = TopicCatalogue.from_settings(settings)
        self.logical: dict[str, str] = {}
        self.serdes: dict[str, AvroSerde] = {}
        for name in FOLLOWED:
            entry = catalogue.topic(name)
            self.logical[entry.name] = name
            if name == "model.state":
                self.serdes[entry.name] = AvroSerde(
                    registry,
                    snapshot_metadata_schema(),
                    value_subject(entry.name),
                    auto_register=False,
                )
            else:
                self.serdes[entry.name] = entry.serde(registry)

    @property
    def topics(self) -> list[str]:
        """The Kafka names of the followed topics."""
        return list(self.serdes)

    def decode(self, topic: str, value: bytes, partition: int, offset: int) -> Decoded:
        """The record at ``offset``; the serde's errors (:class:`SerdeError`) pass through."""
        record = self.serdes[topic].decode(value, topic=topic, partition=partition, offset=offset)
        return Decoded(self.logical[topic], record, partition, offset)
