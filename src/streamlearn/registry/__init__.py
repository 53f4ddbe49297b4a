"""A Confluent-compatible schema registry stored on the compacted ``_schemas`` topic."""

from streamlearn.registry.app import create_registry_app, registry_topic
from streamlearn.registry.compatibility import Level, check
from streamlearn.registry.exceptions import RegistryError
from streamlearn.registry.service import RegistryService
from streamlearn.registry.state import RegistryState

__all__ = [
    "Level",
    "RegistryError",
    "RegistryService",
    "RegistryState",
    "check",
    "create_registry_app",
    "registry_topic",
]
