"""Errors of the agents' runtime."""

from streamlearn.exceptions import StreamlearnError


class RuntimeConfigurationError(StreamlearnError):
    """An agent cannot start with this configuration or cluster (e.g. a missing topic)."""


class FaustMismatchError(RuntimeConfigurationError):
    """The installed faust-streaming lacks a private member the runtime relies on."""
