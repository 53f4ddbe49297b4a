"""Train a model on replayed examples with the learner's own code, and describe what it was
trained on.

The learner's :class:`~streamlearn.models.online.OnlineLearner` does the work (score,
then learn, skipping other models' examples and invalid ones), so a replay of the
examples a live learner read gives the live learner's model, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlearn
from streamlearn.models.keyring import Keyring
from streamlearn.models.online import OnlineLearner
from streamlearn.models.signature import SigningKey
from streamlearn.models.snapshot import build_snapshot
from streamlearn.models.specs import ModelSpec
from streamlearn.replay.examples import PreparedRecord
from streamlearn.replay.positions import PartitionRange
from streamlearn.serving.experiments import base_model


@dataclass(frozen=True)
class ModelTarget:
    """What a replay trains: a spec, on the examples of a model (and arm), published under
    a name."""

    spec: ModelSpec
    examples_of: str
    """The model (spec name) whose examples are learned."""
    arm: str | None
    """Only the examples of this experiment arm (None: all of the model's)."""
    published_as: str

    @classmethod
    def of_snapshot(cls, snapshot: Mapping[str, Any], spec: ModelSpec) -> ModelTarget:
        """What trained ``snapshot``: its manifest says, else its name (``<spec>[@<arm>]``,
        the learner's naming)."""
        manifest = manifest_of(snapshot)
        name = str(snapshot["model_name"])
        if manifest is not None:
            return cls(spec, str(manifest["examples_of"]), manifest.get("arm"), name)
        arm = name.split("@", 1)[1] if "@" in name else None
        return cls(spec, base_model(name), arm, name)

    def learner(
        self, key: SigningKey, key_id: str | None, verification: Keyring | None = None
    ) -> OnlineLearner:
        return OnlineLearner(
            self.spec,
            signing_key=key,
            signing_key_id=key_id,
            verification=verification,
            arm=self.arm,
            examples_of=self.examples_of,
            model_name=self.published_as,
        )


def manifest_of(snapshot: Mapping[str, Any]) -> dict[str, Any] | None:
    """The replay manifest a snapshot carries (None: made by the online learner)."""
    text = snapshot.get("manifest")
    return None if text is None else dict(json.loads(text))


ADVANCE_EVERY = 256
"""Examples learned per progress report (a progress bar's update costs about as much as
learning a few examples; it redraws ten times a second anyway)."""


def learn(
    learner: OnlineLearner,
    examples: Iterable[PreparedRecord],
    topic: str,
    advance: Callable[[int], None] | None = None,
) -> OnlineLearner:
    """Feed ``examples`` (read from Kafka topic ``topic``, prepared) to ``learner``, in
    order; ``advance(n)`` as each :data:`ADVANCE_EVERY` (and finally the last few) are
    learned."""
    step = learner.learn_prepared
    if advance is None:
        for value, partition, offset in examples:
            step(value, topic, partition, offset)
        return learner
    pending = 0
    try:
        for value, partition, offset in examples:
            step(value, topic, partition, offset)
            pending += 1
            if pending == ADVANCE_EVERY:
                advance(pending)
                pending = 0
    finally:
        if pending:
            advance(pending)
    return learner


def manifest(
    target: ModelTarget, topic: str, ranges: Sequence[PartitionRange], source: str
) -> dict[str, Any]:
    """What a replayed snapshot was made from (stored, signed, in the snapshot)."""
    return {
        "kind": "replay",
        "examples_of": target.examples_of,
        "arm": target.arm,
        "spec": target.spec.name,
        "source": source,
        "inputs": [
            {"topic": topic, "partition": r.partition, "start": r.start, "end": r.end}
            for r in ranges
        ],
        "seed": 0,
        "code_version": streamlearn.__version__,
    }


def replayed_snapshot(
    learner: OnlineLearner,
    target: ModelTarget,
    topic: str,
    ranges: Sequence[PartitionRange],
    *,
    version: int,
    created: datetime,
    key: SigningKey,
    key_id: str | None,
    source: str = "kafka",
) -> dict[str, Any]:
    """The snapshot of a model replayed from scratch over ``ranges``: version ``version``,
    no parent, offsets at the ranges' ends (where a learner resuming it goes on)."""
    return build_snapshot(
        target.spec,
        learner.model,
        version=version,
        parent_version=None,
        trained_examples=learner.trained_examples,
        offsets={(topic, r.partition): r.end for r in ranges},
        metrics=learner.metrics(),
        created=created,
        key=key,
        key_id=key_id,
        model_name=target.published_as,
        manifest=manifest(target, topic, ranges, source),
    )
