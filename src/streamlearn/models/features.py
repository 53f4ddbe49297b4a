"""From served features to a River input, and the small River components our specs need.

A prediction carries ``features`` (``PredictionServed.features``: null, boolean, long, double or
string values) and a request ``context`` (strings). :func:`model_input` turns both into the
dict a River estimator reads, the same way at serving and at training time:

- keys sorted, so the model's internal dicts fill in one order whatever order the map arrived
  in (a producer in another language may reorder a map), which keeps pickles byte-identical;
- booleans become 0.0/1.0 and finite numbers floats; strings stay strings (categoricals);
- ``None``, NaN and infinities are dropped: River treats an absent key as "missing", which
  linear models read as a zero contribution and trees route down their most common branch;
- context keys become ``ctx.<key>`` strings. ``TrainingExample`` has no context field, so the
  label join folds the context into the example's features with :func:`with_context`, and the
  learner sees exactly the keys serving saw. Feature names starting with ``ctx.`` are reserved.

:class:`FeatureEncoder` standardises numbers and one-hot encodes strings in one pass.
River's own ``(SelectType(float) | StandardScaler()) + (SelectType(str) | OneHotEncoder())``
union does the same at ~20 µs per learned example against ~7.5 µs here (measured on the
synthetic click world), and a plain ``StandardScaler`` in front of one-hot columns would scale
every present indicator to 0 (River counts only present keys, so their mean is 1).

:class:`SeededGaussianSplitter` exists because River's ``GaussianSplitter`` creates each
``proba.Gaussian`` without a seed, i.e. seeded from ``os.urandom``: the random generator is
never used for learning, but its state is pickled, so two identically trained trees would
never pickle to the same bytes. Its Gaussians are :class:`SeededGaussian`, which leave the
generator out of the pickle: its state (625 words, ~4 KB per Gaussian, one per feature, class
and leaf) was 99 % of a trained ``ctr_tree`` snapshot (666 KB of 670).
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable
from typing import Any, cast

from river import base, proba
from river.tree.splitter import GaussianSplitter

# Defined without River (inputs.py), so that a process that only prepares inputs (the
# learner's decoding process) need not import it; here for the modules that import them
# from this one.
from streamlearn.models.inputs import CONTEXT_PREFIX as CONTEXT_PREFIX
from streamlearn.models.inputs import FeatureValue as FeatureValue
from streamlearn.models.inputs import ModelInput as ModelInput
from streamlearn.models.inputs import model_input as model_input
from streamlearn.models.inputs import with_context as with_context

_log, _log1p, _sin, _cos = math.log, math.log1p, math.sin, math.cos


class FeatureEncoder(base.Transformer):
    """Standardises float features (running mean and population variance, Welford) and
    one-hot encodes string features as ``<key>=<value>``: 1.0, in one pass.

    A number never seen in training maps to 0.0 (the mean); a constant one too. A category
    never seen in training produces a key the estimator has no weight for yet, i.e. no effect.
    The state is three plain dicts, filled in the (sorted) order features first appear.
    """

    def __init__(self) -> None:
        self.counts: dict[Hashable, int] = {}
        self.means: dict[Hashable, float] = {}
        self.m2: dict[Hashable, float] = {}

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        counts, means, m2 = self.counts, self.means, self.m2
        for key, value in x.items():
            if value.__class__ is float:
                n = counts.get(key, 0) + 1
                counts[key] = n
                mean = means.get(key, 0.0)
                delta = value - mean
                mean += delta / n
                means[key] = mean
                m2[key] = m2.get(key, 0.0) + delta * (value - mean)

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        out: dict[Hashable, Any] = {}
        counts, means, m2 = self.counts, self.means, self.m2
        for key, value in x.items():
            if value.__class__ is float:
                n = counts.get(key, 0)
                variance = m2[key] / n if n else 0.0
                out[key] = (value - means[key]) / math.sqrt(variance) if variance > 0 else 0.0
            else:
                out[f"{key}={value}"] = 1.0
        return out


class DerivedFeatures(base.Transformer):
    """Fixed, stateless transforms of named numeric features, for effects that are not linear
    in the raw value (a linear model on the raw value cannot express them):

    - ``log``: ``name`` → ``log(value)`` (dropped, i.e. missing, unless ``value > 0``);
    - ``log1p``: ``(name, scale)`` → ``log1p(value / scale)`` (dropped unless ``value >= 0``);
    - ``cyclic``: ``(name, period)`` → ``name.sin`` and ``name.cos`` of ``2π value / period``
      (the raw value is dropped: hour 23 is next to hour 0);
    - ``known``: ``name`` → ``name.known``: ``"yes"`` or ``"no"``, a string, so that
      :class:`FeatureEncoder` one-hot encodes it and a model can learn what an *absent*
      value means (standardised, an absent number contributes as much as its mean);
    - ``drop``: features removed (e.g. one that repeats another, which naive-Bayes leaves
      would count twice).

    Other features pass unchanged. Nothing is learned: the pickled state is the five
    tuples, so a payload says exactly which transforms its model was trained with.
    """

    def __init__(
        self,
        log: tuple[str, ...] = (),
        log1p: tuple[tuple[str, float], ...] = (),
        cyclic: tuple[tuple[str, float], ...] = (),
        known: tuple[str, ...] = (),
        drop: tuple[str, ...] = (),
    ) -> None:
        self.log = tuple(log)
        self.log1p = tuple(log1p)
        self.cyclic = tuple(cyclic)
        self.known = tuple(known)
        self.drop = tuple(drop)

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(x)
        self.derive(out)
        # Sorted like model_input's keys, so the encoder's dicts fill in one order.
        # (model_input's keys are strings; mypy cannot know it of a River dict.)
        return {key: out[key] for key in sorted(cast("dict[str, Any]", out))}

    def derive(self, out: dict[Hashable, Any]) -> None:
        """The transforms, in place on ``out`` (keys left in no particular order): what
        :meth:`transform_one` does before it sorts. (The workers' scorer compiles the same
        transforms per model version: serving/linear_scoring.py.)"""
        pop = out.pop
        known = self.known
        if len(known) == 1:
            # One flag (the click specs): read and set without a list of pairs, ~0.2 µs of
            # the ~1.1 this method took per request. Two or more are all read before any
            # is set: a flag may be named like another flag's feature.
            name = known[0]
            flag = "yes" if name in out else "no"
            for dropped in self.drop:
                pop(dropped, None)
            out[f"{name}.known"] = flag
        else:
            flags = [(f"{name}.known", "yes" if name in out else "no") for name in known]
            for dropped in self.drop:
                pop(dropped, None)
            out.update(flags)
        for name in self.log:
            value = pop(name, None)
            if value.__class__ is float and value > 0:
                out[name] = _log(value)
        for name, scale in self.log1p:
            value = pop(name, None)
            if value.__class__ is float and value >= 0:
                out[name] = _log1p(value / scale)
        for name, period in self.cyclic:
            value = pop(name, None)
            if value.__class__ is float:
                angle = 2 * math.pi * value / period
                out[f"{name}.sin"] = _sin(angle)
                out[f"{name}.cos"] = _cos(angle)


class SeededGaussian(proba.Gaussian):
    """River's ``proba.Gaussian`` whose random generator (used only by :meth:`sample`) is
    made from the seed when first asked for, and never pickled.

    A sample after loading therefore starts the seed's sequence again instead of going on
    from where the pickled model's generator was; nothing River's trees do draws from it."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)  # type: ignore[no-untyped-call]
        del self._rng  # made again on first use (see __getattr__)

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: for ``_rng`` before the first sample.
        if name == "_rng":
            # Not for cryptography: the distribution's own sampling, as River seeds it.
            rng = self.__dict__["_rng"] = random.Random(self.seed)  # noqa: S311
            return rng
        raise AttributeError(name)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_rng", None)
        return state


class SeededGaussianSplitter(GaussianSplitter):
    """River's ``GaussianSplitter`` whose per-class Gaussians get a fixed seed (see module doc)."""

    def __init__(self, n_splits: int = 10, seed: int = 0) -> None:
        super().__init__(n_splits=n_splits)
        self.seed = seed

    def update(self, att_val: Any, target_val: Any, w: float) -> None:
        if att_val is not None and target_val not in self._att_dist_per_class:
            self._att_dist_per_class[target_val] = SeededGaussian(seed=self.seed)
            self._min_per_class[target_val] = att_val
            self._max_per_class[target_val] = att_val
        super().update(att_val, target_val, w)  # type: ignore[no-untyped-call]
