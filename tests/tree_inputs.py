"""The ``ctr_tree`` spec's inputs as its tree sees them, for the tree tests."""

from __future__ import annotations

from typing import Any

from streamlearn.models.checks import training_stream
from streamlearn.models.specs import get_spec


def tree_stream(n: int, seed: int = 11) -> list[tuple[dict[Any, Any], bool]]:
    """``n`` (input, label) pairs of the synthetic world after ``ctr_tree``'s feature
    transforms (what its tree learns from)."""
    spec = get_spec("ctr_tree")
    transform = next(iter(spec.new_model(0).steps.values()))
    return [(transform.transform_one(x), y >= 0.5) for x, y in training_stream(spec, n, seed)]
