"""Errors of the agents."""

from streamlearn.exceptions import StreamlearnError


class AgentConfigurationError(StreamlearnError):
    """An agent cannot start with this configuration or cluster (e.g. a missing topic)."""
