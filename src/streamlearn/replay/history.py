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
    unusable: tuple[str, ...] = ()
    """What else is under the model's keys: records that decode to no snapshot, and a
    newest record under its name that is a tombstone (compaction then removes every
    version before it), said as such."""

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
    newest_deleted = False
    for record_key, value in read_to_end(settings, topic):
        record_name = (record_key or b"").decode("utf-8", "replace")
        if record_name not in keys:
            continue
        if record_name == name:
            newest_deleted = value is None
        if value is None:
            continue  # under <model>~newest, the gate's routine: a promotion deletes it
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
    unusable = []
    if undecodable:
        records = "record" if undecodable == 1 else "records"
        decode = "decodes" if undecodable == 1 else "decode"
        unusable.append(f"{undecodable} {records} under {name!r} that {decode} to no snapshot")
    if newest_deleted:
        unusable.append(
            f"the newest record under {name!r} is a tombstone: compaction removes every "
            "version before it"
        )
    snapshots = tuple(by_version[v] for v in sorted(by_version))
    return ModelHistory(name, snapshots, undecodable, tuple(unusable))
