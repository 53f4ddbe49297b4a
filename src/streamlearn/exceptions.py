"""The root of every error streamlearn raises on purpose.

Each subpackage defines its own errors in its own ``exceptions.py``, all derived from
:class:`StreamlearnError`, so callers (and the CLI) can tell "streamlearn refused this, here
is why" apart from a bug.
"""


class StreamlearnError(Exception):
    """Base class of every error streamlearn raises deliberately."""


class ConfigurationError(StreamlearnError):
    """Settings or a configuration file are invalid."""
