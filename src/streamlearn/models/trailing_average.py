"""A classifier whose probability is the average of its own recent states.

A Hoeffding tree changes its ranking by jumps: a split moves every input that reaches the
split leaf at once, and a version published just after a split can rank worse than the
one before it on the same requests (docs/learning.md, *Promotion gate*: the drops that
remain are a tree's own variance from version to version). Averaging trees that learn
different resamples (online bagging) halved those drops at four times the cost per
example, because it averages the *model's* variance; what a promotion sees is the change
from one version to the next.

Here the wrapped model learns every example as it would alone, and every ``every``
examples a copy of it is frozen; the probability is the mean of the live model's and of
the last ``keep`` frozen copies'. Two versions published one after the other then share
most of their members: a split enters the average at one part in ``keep + 1`` and its
weight grows one copy at a time, so a version differs from its predecessor by a fraction
of what the tree alone would. The cost is ``keep`` more predictions per example (the
copies never learn) and ``keep`` more trees in a snapshot; the price in accuracy is that
the average is ``every * keep / 2`` examples older on average than the live tree.

A copy never learns, so a copy that is a Hoeffding tree predicts through its log-odds form
(:mod:`streamlearn.models.log_odds_tree`: River's naive Bayes compiled into one pass per
leaf, the same probability up to rounding), and the learner and the workers both ask it
that way. Measured on ``ctr_tree`` (20,000 examples, in one sitting), learning and scoring
an example cost 123 to 141 µs with six such copies, 168 to 173 µs with the copies compiled
bit for bit to River's answer, 257 µs with the copies asked through River, and 85 µs for
the tree alone.

The copies are taken at counts of learned examples, so which states are averaged is a
function of the examples learned, not of time: replaying the same examples builds the
same average, byte for byte.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from river import base
from river.base.typing import ClfTarget

from streamlearn.models.binary_wrapper import BinaryWrapper
from streamlearn.models.compiled_tree import LeafScore
from streamlearn.models.frozen_copy import FrozenCopy, loaded_copy


def mean_probability(scores: Sequence[LeafScore], x: Mapping[Any, Any]) -> float:
    """The members' probabilities added in the given order from 0.0, over their number:
    the one sum the learner and the worker's scorer both use, so the same double."""
    total = 0.0
    for score in scores:
        total += score(x)
    return total / len(scores)


class TrailingAverage(BinaryWrapper):
    """``classifier``'s probability of ``True`` averaged with its last ``keep`` frozen
    copies, one taken every ``every`` learned examples (module docstring)."""

    _scores: list[LeafScore] | None = None
    """The live model's probability, then the copies' compiled, built on first use; not
    part of the model's state."""

    def __init__(self, classifier: base.Classifier, every: int = 1000, keep: int = 3) -> None:
        if every < 1 or keep < 1:
            raise ValueError("TrailingAverage needs every >= 1 and keep >= 1")
        self.classifier = classifier
        self.every = every
        self.keep = keep
        self._learned = 0
        self._frozen: list[FrozenCopy] = []

    @property
    def members(self) -> tuple[base.Classifier, ...]:
        """The averaged models, the live one first, then the copies oldest first."""
        return (self.classifier, *self.copies)

    @property
    def copies(self) -> tuple[base.Classifier, ...]:
        """The frozen copies, oldest first."""
        return tuple(frozen.model for frozen in self._frozen)

    @property
    def copy_probabilities(self) -> list[LeafScore]:
        """The copies' probabilities of True, oldest first, as the average asks them (the
        worker's scorer asks them here too)."""
        return [frozen.probability for frozen in self._frozen]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_scores", None)  # rebuilt from the members
        # Each copy as its own canonical payload, pickled once (models/frozen_copy.py).
        state["_frozen"] = [frozen.payload for frozen in self._frozen]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._frozen = [loaded_copy(payload) for payload in state["_frozen"]]

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        scores = self._scores
        if scores is None:
            live = self.classifier

            def live_score(x: Any) -> float:  # asked through River: it learns on
                return float(live.predict_proba_one(x).get(True, 0.0))

            scores = self._scores = [live_score, *self.copy_probabilities]
        p = mean_probability(scores, x)
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict[Any, Any], y: Any, w: float = 1.0, **kwargs: Any) -> None:
        self._learn_wrapped(x, y, w, **kwargs)
        self._learned += 1
        if self._learned % self.every == 0:
            self._frozen.append(FrozenCopy(copy.deepcopy(self.classifier)))
            if len(self._frozen) > self.keep:
                del self._frozen[0]
            self._scores = None
