"""What a replay refuses to do, and why."""

from __future__ import annotations

from streamlearn.exceptions import StreamlearnError


class ReplayError(StreamlearnError):
    """A replay cannot run as asked (the message says what to change)."""


class PastRetentionError(ReplayError):
    """The range asked for starts before what the log still holds."""
