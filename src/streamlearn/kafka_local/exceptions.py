"""Errors of the embedded broker."""

from streamlearn.exceptions import StreamlearnError


class EmbeddedKafkaError(StreamlearnError):
    """The embedded broker could not be prepared, started or stopped."""


class JavaNotFoundError(EmbeddedKafkaError):
    """No usable Java runtime (17 or newer) was found."""


class JarFetchError(EmbeddedKafkaError):
    """A pinned jar could not be downloaded."""


class ChecksumMismatchError(JarFetchError):
    """A downloaded or cached jar does not match its pinned sha256."""


class BrokerStartError(EmbeddedKafkaError):
    """The broker process exited or did not become ready in time."""
