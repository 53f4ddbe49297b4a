"""Warm starts in the learning lab: a baseline trained on one lab's history, for another.

A fresh deployment with ``ModelSpec.warm_start`` starts from a snapshot trained on the
history (``streamlearn replay model NAME --shadow history``). In the lab, the
history is a first lab run; :func:`history_baseline` re-publishes its model's newest
snapshot under the shadow name, signed with the lab's key, with its offsets cleared: the
fresh deployment is a second lab (another seed of the same world) whose log starts empty,
so it goes on online from its own first example (live, the offsets go on in the same
topic). The second lab puts it on its ``model.state`` before its learner starts
(``LearningLab(..., baselines=[...])``) and its learner takes the path a live one takes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streamlearn.models.signature import key_bytes
from streamlearn.models.snapshot import build_snapshot, state_keys
from streamlearn.simulate.learning_lab import LearningLab


def history_baseline(history: LearningLab, name: str, shadow: str = "history") -> dict[str, Any]:
    """The newest snapshot ``history`` published of model ``name``, as ``<name>@<shadow>``
    trained on that history (offsets cleared: module docstring)."""
    serde = history.cluster.catalogue.topic("model.state").serde(history.registry)
    newest: dict[str, Any] | None = None
    keys = {key.encode() for key in state_keys([name])}
    for _, message in history.cluster.log:
        if message.topic == "model.state" and message.key in keys and message.value:
            newest = serde.decode(message.value)
    if newest is None:
        raise ValueError(f"the history lab published no snapshot of {name}")
    assert history._key is not None
    return build_snapshot(
        history.specs[name],
        None,
        version=1,
        parent_version=None,
        trained_examples=int(newest["trained_examples"]),
        offsets={},
        metrics={},
        created=datetime.fromtimestamp(history.now_ms / 1000, UTC),
        key=key_bytes(history._key),
        model_name=f"{name}@{shadow}",
        payload=bytes(newest["payload"]),
    )
