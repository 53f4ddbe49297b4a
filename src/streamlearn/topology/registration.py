"""Register the value schema of every topic of a topology (idempotent)."""

from __future__ import annotations

from pathlib import Path

from streamlearn.serde import RegistryClient, schema_text, value_subject
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue
from streamlearn.topology.loader import load_topology
from streamlearn.topology.namespace import Namespace


def register_topology_schemas(
    settings: Settings, topology_file: Path, *, retries: int | None = None
) -> list[tuple[str, str, int]]:
    """Register each topic's value schema under ``<namespace><topic>-value``; returns
    (subject, schema name, id) for each. ``retries``: see :meth:`RegistryClient.for_settings`."""
    catalogue = TopicCatalogue(load_topology(topology_file), Namespace(settings.topic_prefix))
    registered = []
    with RegistryClient.for_settings(settings, retries=retries) as registry:
        for topic in catalogue:
            if topic.spec.value_schema is not None:
                subject = value_subject(topic.name)
                schema_id = registry.register(subject, schema_text(topic.value_schema))
                registered.append((subject, topic.value_schema, schema_id))
    return registered
