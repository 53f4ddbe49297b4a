"""What ``model.state`` holds of a model: every snapshot still on the topic, verified or not.

The topic is compacted by key (the model's name, or ``<model>~newest`` for the versions a
promotion gate held back), so old versions disappear over time; until then
each is there with the offsets it was trained up to, which is what ``replay verify``
recomputes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamlearn.models import SnapshotRejected, verify_snapshot
from streamlearn.models.keyring import Keyring
from streamlearn.models.signature import SigningKey
from streamlearn.models.snapshot import state_keys
from streamlearn.runtime.topic_reader import read_to_end
from streamlearn.serde import AvroSerde, DecodeError
from streamlearn.settings import Settings


@dataclass(frozen=True)
class PublishedSnapshot:
    """One ``model.state`` record of a model."""

    snapshot: dict[str, Any]
    rejected: str | None
    """Why it fails verification (signature, digest, malformed), or None."""

    @property
    def version(self) -> int:
        return int(self.snapshot["version"])


@dataclass(frozen=True)
class ModelHistory:
    name: str
    snapshots: tuple[PublishedSnapshot, ...]
    """By version (the last record of a version when one was published twice)."""
    undecodable: int

    @property
    def highest_version(self) -> int:
        return max((s.version for s in self.snapshots), default=0)

    def version(self, version: int) -> PublishedSnapshot | None:
        return next((s for s in self.snapshots if s.version == version), None)


def model_history(
    settings: Settings, serde: AvroSerde, topic: str, name: str, key: SigningKey | Keyring
) -> ModelHistory:
    """Every snapshot of model ``name`` on Kafka topic ``topic`` (``model.state``)."""
    by_version: dict[int, PublishedSnapshot] = {}
    undecodable = 0
    keys = state_keys([name])  # versions its gate held back are under a key of their own
    for record_key, value in read_to_end(settings, topic):
        if value is None or (record_key or b"").decode("utf-8", "replace") not in keys:
            continue
        try:
            snapshot = serde.decode(value)
        except DecodeError:
            undecodable += 1
            continue
        try:
            verify_snapshot(snapshot, key)
            rejected = None
        except SnapshotRejected as exc:
            rejected = str(exc)
        published = PublishedSnapshot(snapshot, rejected)
        by_version[published.version] = published
    return ModelHistory(name, tuple(by_version[v] for v in sorted(by_version)), undecodable)
