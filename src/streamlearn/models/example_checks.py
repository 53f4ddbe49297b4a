"""Whether a model can learn from an example: :func:`example_problem` names what it cannot
take (the field and why), or says nothing. River-free, like :mod:`.inputs`.

A learner refuses such an example instead of learning it: the learner agent sends it to
``events.rejected`` with the problem (``invalid_example``) and goes on. Without the check,
one served prediction with ``hour`` 1e308 and its click made every learner of ``ctr_tree``
raise at that record (and at every restart), and one with ``price`` 1e300 overflowed the
tree's statistics for good.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from streamlearn.models.inputs import NUMBER_LIMIT, NUMBER_LIMIT_TEXT


def example_problem(
    binary: bool, x: Mapping[str, float | str], label: float, weight: float
) -> str | None:
    """What a model cannot learn from in an example (its River input ``x``, whose keys are
    the example's feature names, its label and weight), as ``<field>: <why>``; None when it
    can learn from all of it. ``binary``: the model's labels are 0 or 1."""
    if binary:
        if label != 0.0 and label != 1.0:
            return f"label: {label!r} is not 0 or 1 (a click model's label)"
    elif not -NUMBER_LIMIT <= label <= NUMBER_LIMIT:  # NaN fails both comparisons
        return f"label: {label!r} is not a number within {NUMBER_LIMIT_TEXT}"
    if not 0.0 < weight < math.inf:
        return f"weight: {weight!r} is not a positive finite number"
    for key, value in x.items():
        # model_input made every number a finite float; strings need nothing.
        if value.__class__ is float and not -NUMBER_LIMIT <= value <= NUMBER_LIMIT:
            return f"features.{key}: {value!r} is beyond {NUMBER_LIMIT_TEXT}"
    return None
