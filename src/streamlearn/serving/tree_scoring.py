"""Scoring a served naive-Bayes Hoeffding tree (the ``ctr_tree`` spec:
``[transformers |] HistogramCalibrated(<tree or TrailingAverage of trees>)``) without
River's per-prediction machinery, bit-identical to ``spec.predict``.

The feature transforms run as the pipeline runs them, the tree's probability is its
compiled form (:mod:`streamlearn.models.compiled_tree`: River's answer to the last bit),
an average of trees adds the live tree's and its copies' (each as ``TrailingAverage``
asks a copy) in ``TrailingAverage``'s order, and the calibration is the model's own. A
canary check at creation (``scoring.scorer_for``) falls back to the spec's call otherwise.

It is only for models that no longer learn (what workers and the learning lab serve):
the compiled leaves would not see what a model learned after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from river import base, compose

from streamlearn.models import ModelSpec, model_input
from streamlearn.models.calibration import HistogramCalibrated
from streamlearn.models.compiled_tree import TREES, LeafScore, compiled_tree
from streamlearn.models.features import DerivedFeatures, FeatureValue
from streamlearn.models.inputs import unsorted_model_input
from streamlearn.models.trailing_average import TrailingAverage, mean_probability

Scorer = Callable[[Mapping[str, FeatureValue], Mapping[str, str]], float]


def tree_scorer(spec: ModelSpec, model: Any) -> Scorer | None:
    """The fused scorer of ``[transformers |] HistogramCalibrated(<Hoeffding tree>)``, else
    None. ``scoring.scorer_for`` checks it on canary requests before using it."""
    if spec.task != "binary" or type(model) is not compose.Pipeline:
        return None
    *before, last = model.steps.values()
    if type(last) is not HistogramCalibrated:
        return None
    raw = _raw_score(last.classifier)
    if raw is None:
        return None
    if any(
        not isinstance(step, base.Transformer) or isinstance(step, compose.TransformerUnion)
        for step in before
    ):
        return None
    transforms = tuple(step.transform_one for step in before)
    calibrated = last.calibrated
    predict = spec.predict
    derive = before[0].derive if len(before) == 1 and type(before[0]) is DerivedFeatures else None

    def tree_score(features: Mapping[str, FeatureValue], context: Mapping[str, str]) -> float:
        if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            return predict(model, model_input(features, context))
        x: Any = None
        if derive is not None:
            # DerivedFeatures.transform_one of model_input, with one sort instead of two
            # and no copy between (the same keys, values and order).
            x = unsorted_model_input(features, context)
            if x is not None:
                derive(x)
                x = {key: x[key] for key in sorted(x)}
        if x is None:
            x = model_input(features, context)
            for transform in transforms:
                x = transform(x)
        return calibrated(raw(x))

    return tree_score


def _raw_score(classifier: Any) -> LeafScore | None:
    """The compiled probability of a Hoeffding tree or of a TrailingAverage of one."""
    if type(classifier) in TREES:
        return compiled_tree(classifier)
    if type(classifier) is not TrailingAverage or type(classifier.classifier) not in TREES:
        return None
    # The live tree as River answers it (the learner asks it through River), the copies as
    # the learner asks them (whatever model they are).
    members = (compiled_tree(classifier.classifier), *classifier.copy_probabilities)

    def average(x: Mapping[Any, Any]) -> float:
        # TrailingAverage's own sum, members in its order: the same double.
        return mean_probability(members, x)

    return average
