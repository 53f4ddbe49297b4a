"""Errors of the collector."""

from streamlearn.exceptions import StreamlearnError


class InvalidEventError(StreamlearnError):
    """A posted event does not fit its schema; ``field`` names where (e.g. ``[2].user_id``)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
