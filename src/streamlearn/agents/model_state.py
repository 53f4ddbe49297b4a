"""What ``model.state`` says: the newest verifiable snapshot of each model.

:func:`consider` folds one record into a :class:`ModelStateView`; the learner folds every
record of the topic, read from its start to its end by whichever runtime runs it.

The learner resumes from it after a start or a rebalance. The topic is compacted by key:
the model's name for promoted versions, ``<model>~newest`` for versions a promotion gate
held back (:func:`~streamlearn.models.snapshot.state_key`), so it holds the latest snapshot
of each (and, until compaction, older ones); the newest one that verifies wins. A newer
one that fails verification is counted and reported: the learner resumes from the last
good one but numbers its next version after the highest version seen, so workers, which
keep the highest verified version, move on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from streamlearn.models import SnapshotRejected, verify_snapshot
from streamlearn.models.keyring import Keyring
from streamlearn.models.signature import SigningKey
from streamlearn.models.snapshot import is_promoted
from streamlearn.serde import AvroSerde, DecodeError

log = logging.getLogger(__name__)


@dataclass
class ModelStateView:
    """What ``model.state`` says about some models, read from its start to its end."""

    newest: dict[str, dict[str, Any]] = field(default_factory=dict)
    """model name → newest snapshot that verified."""
    promoted: dict[str, dict[str, Any]] = field(default_factory=dict)
    """model name → newest snapshot that verified and its promotion gate promoted."""
    highest_version: dict[str, int] = field(default_factory=dict)
    """model name → highest version seen, verified or not."""
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    """(model name, version, reason) of snapshots that failed verification."""


def consider(
    view: ModelStateView,
    serde: AvroSerde,
    record_key: bytes | None,
    value: bytes | None,
    wanted: set[str],
    key: SigningKey | Keyring,
) -> None:
    """Fold one ``model.state`` record into ``view``."""
    if value is None or (record_key or b"").decode() not in wanted:
        return
    try:
        snapshot = serde.decode(value)
    except DecodeError as exc:
        log.error("undecodable record on model.state: %s", exc)
        return
    name, version = snapshot["model_name"], int(snapshot["version"])
    view.highest_version[name] = max(view.highest_version.get(name, 0), version)
    try:
        verify_snapshot(snapshot, key)
    except SnapshotRejected as exc:
        view.rejected.append((name, version, exc.reason))
        log.error("snapshot %s v%d on model.state rejected: %s", name, version, exc)
        return
    for newest in (view.newest, view.promoted) if is_promoted(snapshot) else (view.newest,):
        current = newest.get(name)
        # Of one version published twice (signed again after a key rotation), the later
        # record: the one compaction keeps.
        if current is None or version >= int(current["version"]):
            newest[name] = snapshot
