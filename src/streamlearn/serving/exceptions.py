"""Errors of the prediction workers."""

from __future__ import annotations

from streamlearn.exceptions import StreamlearnError


class ServingError(StreamlearnError):
    """Root of the errors of :mod:`streamlearn.serving`."""


class InvalidRequest(ServingError):  # noqa: N818 (reads as what it is)
    """A client mistake: answered with ``status`` and a JSON error naming ``field``."""

    def __init__(self, status: int, field: str | None, problem: str) -> None:
        self.status = status
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class InvalidExperiment(ServingError):  # noqa: N818 (reads as what it is)
    """An ``Experiment`` record that cannot route anybody (no arms, bad weights...)."""
