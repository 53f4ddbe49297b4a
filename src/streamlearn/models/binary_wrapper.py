"""The base of a binary classifier that wraps another (the calibration, the trailing
average): River's wrapper plumbing and the one way a weight is passed on, written once."""

from __future__ import annotations

from typing import Any

from river import base


class BinaryWrapper(base.Wrapper[base.Classifier], base.Classifier):
    """A binary classifier around ``self.classifier``."""

    classifier: base.Classifier

    @property
    def _wrapped_model(self) -> base.Classifier:
        return self.classifier

    @property
    def _multiclass(self) -> bool:
        # River's Wrapper would say the wrapped model's (a tree: multiclass); this is binary.
        return False

    def _learn_wrapped(self, x: dict[Any, Any], y: Any, w: float, **kwargs: Any) -> None:
        """The wrapped model's ``learn_one``, given the weight only when it is not 1, as
        ``ModelSpec.learn`` passes it: a weighted and an unweighted call path build the
        same model."""
        if w == 1.0:
            self.classifier.learn_one(x, y, **kwargs)
        else:
            # River's signature says no weight; its trees and linear models take one.
            self.classifier.learn_one(x, y, w=w, **kwargs)  # type: ignore[call-arg]
