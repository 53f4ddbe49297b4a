"""Register the value schema of every topic of a topology (idempotent)."""

from __future__ import annotations

from pathlib import Path

from streamlearn.serde import RegistryClient, schema_names, schema_text, value_subject
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue
from streamlearn.topology.exceptions import TopologyError
from streamlearn.topology.loader import field_location, load_topology
from streamlearn.topology.model import Topology
from streamlearn.topology.namespace import Namespace


def register_topology_schemas(
    settings: Settings, topology_file: Path, *, retries: int | None = None
) -> list[tuple[str, str, int]]:
    """Register each topic's value schema under ``<namespace><topic>-value``; returns
    (subject, schema name, id) for each. ``retries``: see :meth:`RegistryClient.for_settings`."""
    topology = load_topology(topology_file)
    _check_schema_names(topology, topology_file)
    catalogue = TopicCatalogue(topology, Namespace(settings.topic_prefix))
    registered = []
    with RegistryClient.for_settings(settings, retries=retries) as registry:
        for topic in catalogue:
            if topic.spec.value_schema is not None:
                subject = value_subject(topic.name)
                schema_id = registry.register(subject, schema_text(topic.value_schema))
                registered.append((subject, topic.value_schema, schema_id))
    return registered


def _check_schema_names(topology: Topology, topology_file: Path) -> None:
    """Refuse, before registering anything, a topology naming a value schema that is not
    shipped: found on its turn, the topics above it were registered and the error named
    neither the file, its line nor the topic."""
    known = schema_names()
    problems = [
        f"{field_location(topology_file, ('topics', index, 'value_schema'))}: "
        f"topics.{index}.value_schema: no schema named {spec.value_schema!r} "
        f"(known: {', '.join(known)})"
        for index, spec in enumerate(topology.topics)
        if spec.value_schema is not None and spec.value_schema not in known
    ]
    if problems:
        raise TopologyError("\n".join(problems))
