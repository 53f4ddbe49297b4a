"""Errors of model specs, snapshots and safe loading.

Every snapshot a worker or learner refuses raises a :class:`SnapshotRejected` subclass whose
``reason`` is a short, stable label (``bad_signature``, ``retired_key``,
``payload_digest_mismatch``, ``forbidden_class``, ``unknown_spec``, ``undecodable``):
callers count and alert by reason without parsing messages, and keep serving the model
they already have.
"""

from __future__ import annotations

from typing import ClassVar, Self

from streamlearn.exceptions import StreamlearnError


class ModelError(StreamlearnError):
    """Root of the errors of :mod:`streamlearn.models`."""


class UnknownModelSpec(ModelError, LookupError):  # noqa: N818 (name from the design)
    """No shipped model spec has this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model spec {name!r}; known: {', '.join(known)}")
        self.name = name


class SnapshotRejected(ModelError):  # noqa: N818 (name from the design)
    """A snapshot failed a check and was not loaded; ``reason`` says which check."""

    reason: ClassVar[str] = "rejected"

    def __init__(
        self, detail: str, *, model_name: str | None = None, version: int | None = None
    ) -> None:
        self.detail = detail
        self.model_name = model_name
        self.version = version
        super().__init__(self._message())

    def _message(self) -> str:
        where = "snapshot" if self.model_name is None else f"{self.model_name} v{self.version}"
        return f"{where} rejected ({self.reason}): {self.detail}"

    def at(self, model_name: str | None, version: int | None) -> Self:
        """This error with the snapshot it is about (the unpickler does not know it)."""
        self.model_name = model_name
        self.version = version
        self.args = (self._message(),)
        return self


class BadSignature(SnapshotRejected):
    """The HMAC does not match: wrong key, or metadata or payload changed after signing."""

    reason = "bad_signature"


class PayloadDigestMismatch(SnapshotRejected):
    """The payload's sha256 differs from ``payload_sha256``."""

    reason = "payload_digest_mismatch"


class ForbiddenClass(SnapshotRejected):
    """The payload references a global outside the allowlist; nothing was executed."""

    reason = "forbidden_class"

    def __init__(
        self, module: str, name: str, *, model_name: str | None = None, version: int | None = None
    ) -> None:
        super().__init__(
            f"payload references {module}.{name}, which is not an allowed model class",
            model_name=model_name,
            version=version,
        )
        self.module = module
        self.name = name


class UnknownSnapshotSpec(SnapshotRejected):
    """The snapshot was built from a spec this process does not ship (or ships differently)."""

    reason = "unknown_spec"


class RetiredKey(SnapshotRejected):
    """Signed with a previous key whose grace period has ended."""

    reason = "retired_key"


class ConflictingVersion(SnapshotRejected):
    """Another snapshot of the model was published with the same version before."""

    reason = "conflicting_version"


class UndecodableSnapshot(SnapshotRejected):
    """The snapshot is malformed: missing fields, an unknown content type, or a broken pickle."""

    reason = "undecodable"


class ContractViolation(ModelError):  # noqa: N818 (reads as what it is)
    """A model spec breaks one of the contracts every shipped spec must keep."""


class SnapshotTooLarge(ModelError):  # noqa: N818 (says what it is, as SnapshotRejected)
    """A model's snapshot would not fit ``model.state``'s message limit: not published (the
    learner keeps learning and tries again at its next cadence)."""

    def __init__(self, model_name: str, size: int, limit: int) -> None:
        super().__init__(
            f"{model_name}: a snapshot of {size:,} bytes does not fit model.state's "
            f"{limit:,}-byte records"
        )
        self.model_name = model_name
        self.size = size
        self.limit = limit
