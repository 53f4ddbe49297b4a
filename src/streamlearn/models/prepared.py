"""What learning reads of a ``TrainingExample``, as plain data, without importing River.

:func:`prepared_example` is the learner agent's preparation of its input
(``LearnerStep.input_preparations``): its decoding process runs it on every example it
decodes and hands the tuple over with ``marshal``, so the agent's own interpreter only
scores and learns; a replay's reading process does the same. Kept apart from
:mod:`streamlearn.models.online` (which needs River) so that such a process does not load
River, numpy and scipy to run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlearn.models.inputs import ModelInput, model_input
from streamlearn.models.recent_examples import Identity, example_identity
from streamlearn.serde.timestamps import epoch_millis

PreparedExample = tuple[
    str,
    str | None,
    Identity | None,
    ModelInput,
    float,
    float,
    float | None,
    int | None,
    int | None,
]
"""What learning reads of a ``TrainingExample``: (model name, arm, identity, River input,
label, weight, served score, serving version, served time in epoch ms). A plain tuple of
plain data, so the process that decodes examples (a replay's reader, the learner agent's
decoding process) hands it over with ``marshal``."""


def prepared_example(example: Mapping[str, Any]) -> PreparedExample:
    """The part of ``example`` that :meth:`OnlineLearner.learn_prepared` reads (the learner
    agent's preparation of its input, ``LearnerStep.input_preparations``)."""
    served, served_by = example.get("score"), example.get("model_version")
    served_ts = example.get("served_ts")
    return (
        example["model_name"],
        example.get("arm"),
        example_identity(example),
        model_input(example["features"]),
        float(example["label"]),
        float(example.get("weight", 1.0)),
        None if served is None else float(served),
        None if served_by is None else int(served_by),
        None if served_ts is None else epoch_millis(served_ts),
    )
