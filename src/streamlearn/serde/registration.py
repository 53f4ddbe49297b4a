"""Register the value schema of every topic of a topology (idempotent)."""

from __future__ import annotations

from pathlib import Path

from streamlearn.serde.avro import value_subject
from streamlearn.serde.registry_client import RegistryClient
from streamlearn.serde.schemas import schema_text
from streamlearn.settings import Settings
from streamlearn.topology import load_topology


def register_topology_schemas(
    settings: Settings, topology_file: Path
) -> list[tuple[str, str, int]]:
    """Register each topic's value schema under ``<prefix><topic>-value``; returns
    (subject, schema name, id) for each."""
    registered = []
    with RegistryClient(settings.schema_registry_url) as registry:
        for spec in load_topology(topology_file).topics:
            if spec.value_schema is not None:
                subject = value_subject(settings.topic_prefix + spec.name)
                schema_id = registry.register(subject, schema_text(spec.value_schema))
                registered.append((subject, spec.value_schema, schema_id))
    return registered
