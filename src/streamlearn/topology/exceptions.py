"""Errors of the topology (topics as code)."""

from streamlearn.exceptions import StreamlearnError


class TopologyError(StreamlearnError):
    """The topology file is invalid."""


class RefusedChangeError(StreamlearnError):
    """Applying the topology would need a change that is never made automatically."""

    def __init__(self, refusals: list[str]) -> None:
        self.refusals = refusals
        super().__init__("refused: " + "; ".join(refusals))


class TopologyApplyError(StreamlearnError):
    """The cluster rejected a create or alter request."""
