"""Model specs: what a named model is, how it learns, when it is labelled and how it is served.

A spec is declared once, here, and referred to by name everywhere else (config, topics,
snapshots): the River estimator (a factory taking a seed), the task, the label definition the
label join applies, the snapshot cadence of the learner, and the business rules prediction
workers apply to its scores. :meth:`ModelSpec.describe` is the canonical text stored in every
snapshot's ``spec`` field; a worker only loads a payload whose description equals its own
spec's, so a payload is never read with other feature extraction than it was trained with.
Bump ``revision`` whenever the estimator or the feature extraction changes.

Every spec is deterministic given a seed: the same examples in the same order give the same
pickled bytes, in any process (checked by :mod:`streamlearn.models.checks`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from streamlearn.exceptions import ConfigurationError
from streamlearn.models.exceptions import UnknownModelSpec
from streamlearn.models.inputs import ModelInput

Task = Literal["binary", "regression"]
FeedbackStrategy = Literal["as_labelled", "in_order", "fake_negative"]
"""How a binary label reaches the learner when its feedback is delayed (docs/learning.md):

- ``as_labelled``: each example as soon as its label is known: a positive when its click
  arrives (seconds after serving), a negative when the horizon closes;
- ``in_order``: positives held until their horizon closes too, so examples are learned in
  serving order, positives and negatives of a moment together;
- ``fake_negative`` (Ktena et al. 2019): every seen prediction is emitted as a negative at
  its impression, and again as a positive when its click comes; the learner weights each
  example by the importance of the true distribution over the one it sees (positives
  ``1 + p``, negatives ``(1 - p)(1 + p)``, ``p`` its own current score).
"""
FEEDBACK_STRATEGIES: tuple[FeedbackStrategy, ...] = ("as_labelled", "in_order", "fake_negative")

SPEC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""What a spec may be called: its name is a path segment of the workers' routes
(``/v1/models/{name}:predict``, where ``/``, ``:`` and spaces do not route), and ``@`` and
``~`` are taken (``ctr@history`` a shadow or an arm, ``ctr~newest`` the newest version)."""
SPEC_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100"

FEATURES_FORMAT = "streamlearn.models.features.model_input/1"
"""Version of :func:`~streamlearn.models.features.model_input`, part of every description."""


@dataclass(frozen=True)
class LabelDefinition:
    """How the label join turns served → impression → outcomes into a label.

    Binary: 1 when a feedback of a ``positive_kinds`` kind arrives within ``horizon_s`` of
    serving (and the prediction was seen), else 0. Regression: the sum of ``value`` of the
    ``value_kinds`` feedback within the horizon (a feedback without a value adds 0).
    """

    name: str
    horizon_s: float
    positive_kinds: tuple[str, ...] = ()
    value_kinds: tuple[str, ...] = ()
    strategy: FeedbackStrategy = "as_labelled"
    """When examples are emitted and how they are weighted (:data:`FeedbackStrategy`);
    binary labels only."""

    def __post_init__(self) -> None:
        if self.horizon_s <= 0:
            raise ConfigurationError(f"label {self.name}: horizon_s must be > 0")
        if self.strategy not in FEEDBACK_STRATEGIES:
            raise ConfigurationError(
                f"label {self.name}: unknown strategy {self.strategy!r}; known: "
                f"{', '.join(FEEDBACK_STRATEGIES)}"
            )
        if self.strategy != "as_labelled" and self.value_kinds:
            raise ConfigurationError(
                f"label {self.name}: strategy {self.strategy} needs a binary label"
            )
        if bool(self.positive_kinds) == bool(self.value_kinds):
            raise ConfigurationError(
                f"label {self.name}: set exactly one of positive_kinds and value_kinds"
            )

    @property
    def task(self) -> Task:
        return "binary" if self.positive_kinds else "regression"

    @property
    def horizon_ms(self) -> int:
        return round(self.horizon_s * 1000)


@dataclass(frozen=True)
class BusinessRules:
    """Limits prediction workers apply to a model's scores (the learner reads only the
    clamp: a regression label outside it is learned as its nearest bound).

    Scores are clamped to [``clamp_min``, ``clamp_max``]; a score at or above ``threshold``
    is a positive decision; at most ``positive_cap_per_window`` positive decisions per
    ``cap_window_s`` (then an alert, not silent acting); without a model, or with one older
    than ``max_model_age_s``, the worker answers ``fallback_score``/``fallback_decision``
    with ``degraded: true``.
    """

    clamp_min: float = 0.0
    clamp_max: float = 1.0
    threshold: float | None = None
    positive_decision: str = "show"
    negative_decision: str = "skip"
    positive_cap_per_window: int | None = None
    cap_window_s: float = 60.0
    fallback_score: float = 0.0
    fallback_decision: str | None = None
    max_model_age_s: float | None = None

    def __post_init__(self) -> None:
        if self.clamp_min > self.clamp_max:
            raise ConfigurationError("clamp_min must not exceed clamp_max")
        if self.cap_window_s <= 0:
            raise ConfigurationError("cap_window_s must be > 0")

    def clamp(self, score: float) -> float:
        return min(max(score, self.clamp_min), self.clamp_max)


PromotionJudge = Literal["trainee", "candidate"]
PROMOTION_JUDGES: tuple[PromotionJudge, ...] = ("trainee", "candidate")


@dataclass(frozen=True)
class ModelSpec:
    """A named model: estimator factory, task, label, snapshot cadence and serving rules."""

    name: str
    task: Task
    estimator: str
    """Short canonical text of what ``build`` returns (part of the description)."""
    build: Callable[[int], Any] = field(repr=False, compare=False)
    """Builds a fresh, untrained River estimator from a seed."""
    label: LabelDefinition
    revision: int = 1
    snapshot_every_examples: int = 10_000
    snapshot_every_s: float = 10.0
    rules: BusinessRules = field(default_factory=BusinessRules)
    promotion_margin: float | None = None
    """The promotion gate (binary specs): a new version is promoted (workers should serve
    it) only if its prequential log loss over the last ``promotion_window`` examples is at
    most the promoted version's on the same examples plus this margin; None: every
    version is promoted."""
    promotion_window: int = 2000
    promotion_judge: PromotionJudge = "trainee"
    """What the gate judges: "trainee", the prequential losses of the model being trained
    since the last promotion (a version is published, promoted or not, when it is cut);
    "candidate", each version itself, frozen when it is cut and scored beside the
    promoted model on the next ``promotion_window`` examples (held out for both), then
    published with its verdict: versions reach workers that window later
    (models/promotion.py)."""
    promotion_after_examples: int = 0
    """The gate judges versions once the promoted one has learned this many examples;
    before that every version is promoted as it is cut, as without a gate: a young model
    gains with each version, and judging it only delays that (with "candidate", by a
    window per version)."""
    promotion_auc_margin: float | None = None
    """With the "candidate" judge: a candidate is promoted only if its AUC over the
    window is also at least the promoted version's there less this margin (paired, on the
    same held-out examples); None: log loss alone decides."""
    numeric_features: tuple[str, ...] = ()
    """Features this model reads as numbers: a prediction request sending one of them as a
    string is refused (422, naming it). Otherwise ``"price": "12.5"`` would be served as if
    price were missing (a derived feature takes numbers only) and ``"is_mobile": "1"``
    learned as a category. Null still means missing; a boolean is a number. Not part of the
    description: it checks requests, and changes nothing a payload means."""
    warm_start: str | None = None
    """A ``model.state`` name (``ctr@history``: what ``streamlearn replay model ctr --shadow
    history --publish`` made from the history) whose newest verified snapshot a learner
    with no snapshot of its own starts from, continuing online from the offsets it
    records; None: from an untrained model. Not part of the description: the payload
    means the same either way (the snapshot must be of this spec)."""

    def __post_init__(self) -> None:
        if not SPEC_NAME.fullmatch(self.name):
            raise ConfigurationError(f"spec name {self.name!r}: {SPEC_NAME_RULE}")
        if self.label.task != self.task:
            raise ConfigurationError(
                f"spec {self.name}: task {self.task} but label {self.label.name} is "
                f"{self.label.task}"
            )
        if self.snapshot_every_examples < 1 or self.snapshot_every_s <= 0:
            raise ConfigurationError(f"spec {self.name}: snapshot cadence must be positive")
        if self.promotion_judge not in PROMOTION_JUDGES:
            raise ConfigurationError(
                f"spec {self.name}: promotion_judge must be one of {', '.join(PROMOTION_JUDGES)}"
            )
        if self.promotion_auc_margin is not None and (
            self.promotion_margin is None or self.promotion_judge != "candidate"
        ):
            raise ConfigurationError(
                f"spec {self.name}: an AUC margin needs a promotion gate whose judge is "
                '"candidate" (the trainee judge keeps losses only)'
            )
        if self.promotion_margin is not None:
            self._check_gate()

    def _check_gate(self) -> None:
        """The promotion gate's values, each named when wrong (a NaN margin was taken: every
        comparison with it is false, so the gate held back every version after the first)."""
        problem, margin = None, self.promotion_margin
        if self.task != "binary":
            problem = f"a promotion gate needs a binary task, not {self.task}"
        elif margin is None or not 0 <= margin < math.inf:
            problem = f"promotion_margin {margin} must be a finite number >= 0"
        elif self.promotion_window < 1:
            problem = f"promotion_window {self.promotion_window} must be >= 1"
        elif self.promotion_after_examples < 0:
            problem = f"promotion_after_examples {self.promotion_after_examples} must be >= 0"
        elif self.promotion_auc_margin is not None and not -1 <= self.promotion_auc_margin <= 1:
            problem = f"promotion_auc_margin {self.promotion_auc_margin} must be from -1 to 1"
        if problem is not None:
            raise ConfigurationError(f"spec {self.name}: {problem}")

    def new_model(self, seed: int = 0) -> Any:
        """A fresh, untrained estimator."""
        return self.build(seed)

    @cached_property
    def description(self) -> str:
        """Canonical JSON of everything that determines the payload (see :meth:`describe`)."""
        return json.dumps(
            {
                "name": self.name,
                "task": self.task,
                "revision": self.revision,
                "estimator": self.estimator,
                "features": FEATURES_FORMAT,
                "label": self._label_description,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @cached_property
    def _label_description(self) -> dict[str, Any]:
        label = self.label
        described: dict[str, Any] = {
            "name": label.name,
            "horizon_s": label.horizon_s,
            "positive_kinds": list(label.positive_kinds),
            "value_kinds": list(label.value_kinds),
        }
        # Only when not the original behaviour, so descriptions (and the snapshots that
        # carry them) of specs that keep it stay what they were.
        if label.strategy != "as_labelled":
            described["strategy"] = label.strategy
        return described

    def describe(self) -> str:
        """The text stored in ``ModelSnapshot.spec``; serving rules and cadence are left out
        because they do not change what the payload means."""
        return self.description

    def target(self, label: float) -> bool | float:
        """The River target for a ``TrainingExample.label``."""
        return label >= 0.5 if self.task == "binary" else float(label)

    def predict(self, model: Any, x: ModelInput) -> float:
        """The raw score: probability of a positive for binary specs, the value otherwise."""
        if self.task == "binary":
            return float(model.predict_proba_one(x).get(True, 0.0))
        return float(model.predict_one(x))

    def importance(self, label: float, score: float) -> float:
        """The weight the label's strategy gives an example of ``label`` that the model
        being trained scores ``score`` (1 unless ``fake_negative``).

        Under fake negatives the learner sees every positive twice, once as a negative:
        b(1|x) = p / (1 + p), b(0|x) = 1 / (1 + p). Weighting by p(y|x) / b(y|x) makes
        the expected loss that of the true distribution (Ktena et al. 2019), with the
        model's own score standing in for p (as a constant, not differentiated).
        """
        if self.label.strategy != "fake_negative":
            return 1.0
        p = min(max(score, 0.0), 1.0)
        return 1.0 + p if label >= 0.5 else (1.0 - p) * (1.0 + p)

    def learn(self, model: Any, x: ModelInput, label: float, weight: float = 1.0) -> None:
        """One ``learn_one``; the weight is passed only when it is not 1, so a weighted and
        an unweighted call path build the same model."""
        if weight == 1.0:
            model.learn_one(x, self.target(label))
        else:
            model.learn_one(x, self.target(label), w=weight)


# Each factory imports the estimators when it builds one (see models/estimators.py).
def _ctr(seed: int) -> Any:
    from streamlearn.models.estimators import ctr

    return ctr(seed)


def _ctr_tree(seed: int) -> Any:
    from streamlearn.models.estimators import ctr_tree

    return ctr_tree(seed)


def _conversion_value(seed: int) -> Any:
    from streamlearn.models.estimators import conversion_value

    return conversion_value(seed)


CLICK_WITHIN_30M = LabelDefinition("click_within_30m", horizon_s=1800, positive_kinds=("click",))
VALUE_WITHIN_1H = LabelDefinition(
    "value_within_1h", horizon_s=3600, value_kinds=("conversion", "value")
)

CLICK_NUMBERS = ("hour", "is_mobile", "price", "recency_s")
"""What the click world's apps send as numbers (:mod:`streamlearn.models.synthetic`)."""

CLICK_FEATURES = "DerivedFeatures(log=price, log1p=recency_s/600, cyclic=hour/24, known=recency_s)"
"""The canonical text of :func:`streamlearn.models.estimators.click_features` in the click
specs' descriptions."""

_CTR_RULES = BusinessRules(
    threshold=0.05,
    positive_cap_per_window=10_000,
    cap_window_s=60.0,
    fallback_score=0.02,
    fallback_decision="skip",
    max_model_age_s=3600.0,
)

SPECS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ModelSpec(
                name="ctr",
                task="binary",
                estimator=(f"{CLICK_FEATURES} | FeatureEncoder | LogisticRegression(AdaGrad(0.1))"),
                revision=2,
                build=_ctr,
                label=CLICK_WITHIN_30M,
                rules=_CTR_RULES,
                numeric_features=CLICK_NUMBERS,
            ),
            ModelSpec(
                name="ctr_tree",
                task="binary",
                estimator=(
                    f"{CLICK_FEATURES}(drop=ctx.device) | HistogramCalibrated("
                    "TrailingAverage(InheritingHoeffdingTreeClassifier(grace_period=200, "
                    "leaf_prediction=nb, SeededGaussianSplitter, inherit_until=200, "
                    "nominal_split_inherited=False), every=500, keep=6), bins=64, low=-5, "
                    "high=5, prior=20, platt_memory=5000)"
                ),
                revision=8,
                build=_ctr_tree,
                label=CLICK_WITHIN_30M,
                rules=_CTR_RULES,
                numeric_features=CLICK_NUMBERS,
            ),
            ModelSpec(
                name="conversion_value",
                task="regression",
                estimator="FeatureEncoder | LinearRegression(SGD(0.001))",
                build=_conversion_value,
                label=VALUE_WITHIN_1H,
                numeric_features=CLICK_NUMBERS,
                rules=BusinessRules(
                    clamp_min=0.0,
                    clamp_max=10_000.0,
                    fallback_score=0.0,
                    max_model_age_s=6 * 3600.0,
                ),
            ),
        )
    }
)
"""Every shipped spec, by name."""


def get_spec(name: str) -> ModelSpec:
    """The shipped spec called ``name``; :class:`UnknownModelSpec` otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownModelSpec(name, sorted(SPECS)) from None
