"""Histograms with bins fixed once from a reference window, for comparing later windows to it.

Drift statistics compare two distributions bin by bin, so both must be binned the same way:
the bins are chosen once, from the reference (quantiles of a numeric feature, the most
frequent values of a categorical one), and every later window is counted into those same
bins. Recomputing bins per window would make windows incomparable and would hide exactly
the shifts we look for (a feature moving into a tail lands in the open-ended end bin).

A histogram is a few numbers, so it is mergeable (windows of several partitions add up)
and its state is plain JSON (``to_json``/``from_json`` round-trip exactly) because the
monitor keeps it in a changelog-backed state store.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

OTHER = "__other__"
"""The categorical bin of every value that was not among the reference's most frequent."""


def _checked_counts(counts: Sequence[float] | None, size: int) -> list[float]:
    if counts is None:
        return [0.0] * size
    checked = [float(count) for count in counts]
    if len(checked) != size:
        raise ValueError(f"expected {size} counts, got {len(checked)}")
    if not all(math.isfinite(count) and count >= 0 for count in checked):
        raise ValueError("counts must be finite and non-negative")
    return checked


def _quantiles(array: npt.NDArray[np.float64], levels: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Linear quantiles, finite for any finite values: between two values of opposite
    sign near the largest double (a feature of a record some producer wrote: Avro doubles
    allow it, though streamlearn's workers refuse numbers beyond 2^63) the step ``b - a``
    overflows to inf, and "edges must be finite" failed the monitor, again on every
    restart. Such quantiles are taken of the halved values, then doubled (exact
    in binary: the same edges wherever the direct ones are finite)."""
    with np.errstate(over="ignore", invalid="ignore"):
        quantiles = np.quantile(array, levels, method="linear")
    if np.isfinite(quantiles).all():
        return quantiles
    return np.quantile(array / 2, levels, method="linear") * 2


_LARGEST = float(np.finfo(float).max)


def _clipped(value: float) -> float:
    """``value`` within the finite doubles (an overflow to inf becomes the largest)."""
    return min(max(value, -_LARGEST), _LARGEST)


def _g(value: float) -> str:
    return f"{value:g}"


class NumericHistogram:
    """Fixed-edge histogram: interior edges fixed once from a reference, never recomputed.

    ``edges`` are the strictly increasing interior edges; the ``len(edges) + 1`` bins are
    right-closed: ``(-inf, e0], (e0, e1], ..., (e_last, inf)``. The two open-ended bins
    catch values outside the reference's range, so a shift into a tail still counts.
    """

    def __init__(self, edges: Sequence[float], counts: Sequence[float] | None = None) -> None:
        self.edges: tuple[float, ...] = tuple(float(edge) for edge in edges)
        if not self.edges:
            raise ValueError("a numeric histogram needs at least one edge")
        if not all(math.isfinite(edge) for edge in self.edges):
            raise ValueError("edges must be finite")
        if any(low >= high for low, high in pairwise(self.edges)):
            raise ValueError("edges must be strictly increasing")
        self.counts: list[float] = _checked_counts(counts, len(self.edges) + 1)

    @classmethod
    def from_reference(cls, values: Sequence[float], bins: int = 10) -> NumericHistogram:
        """Edges at the reference's quantiles ``1/bins, ..., (bins-1)/bins``, counts filled.

        Equal quantiles collapse into one edge, so a discrete feature (an hour, a boolean)
        gets fewer bins; all-equal values give one edge at that value (two bins).
        """
        if bins < 2:
            raise ValueError("bins must be at least 2")
        array = np.asarray(values, dtype=float)
        if array.size == 0:
            raise ValueError("an empty reference has no quantiles")
        if not np.isfinite(array).all():
            raise ValueError("reference values must be finite")
        edges = np.unique(_quantiles(array, np.arange(1, bins) / bins))
        histogram = cls(edges.tolist())
        indices = np.searchsorted(edges, array, side="left")
        histogram.counts = np.bincount(indices, minlength=len(edges) + 1).astype(float).tolist()
        return histogram

    def empty_like(self) -> NumericHistogram:
        """The same bins, no counts: a new window against the same reference."""
        return NumericHistogram(self.edges)

    def add(self, value: float, weight: float = 1.0) -> None:
        """Count ``value``; a value equal to an edge goes to the bin that edge closes."""
        if math.isnan(value):
            raise ValueError("cannot bin NaN (count missing values separately)")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError("weight must be finite and non-negative")
        self.counts[bisect_left(self.edges, value)] += weight

    def merge(self, other: NumericHistogram) -> None:
        """Add ``other``'s counts to this histogram's (in place); the edges must be equal."""
        if not isinstance(other, NumericHistogram) or other.edges != self.edges:
            raise ValueError("can only merge numeric histograms with the same edges")
        self.counts = [
            mine + theirs for mine, theirs in zip(self.counts, other.counts, strict=True)
        ]

    @property
    def total(self) -> float:
        return float(sum(self.counts))

    def labels(self) -> list[str]:
        """One label per bin: ``≤1.5``, ``(1.5, 3]``, ..., ``>7``."""
        edges = self.edges
        inner = [f"({_g(low)}, {_g(high)}]" for low, high in pairwise(edges)]
        return [f"≤{_g(edges[0])}", *inner, f">{_g(edges[-1])}"]

    def centres(self) -> list[float]:
        """A representative value per bin, where the Wasserstein distance places its mass.

        Interior bins: their midpoint. The open-ended bins: the edge minus (plus) half the
        width of the neighbouring interior bin, or 0.5 when there is only one edge.
        """
        edges = self.edges
        if len(edges) == 1:
            return [_clipped(edges[0] - 0.5), _clipped(edges[0] + 0.5)]
        # Halves first (exact in binary above 2e-308, so the centres ``(low + high) / 2``
        # gave): sums of edges near the largest double overflowed to inf, and the
        # Wasserstein distance and its thresholds were NaN. An end bin's centre is at most
        # that double.
        inner = [low / 2 + high / 2 for low, high in pairwise(edges)]
        first = _clipped(edges[0] - (edges[1] / 2 - edges[0] / 2))
        last = _clipped(edges[-1] + (edges[-1] / 2 - edges[-2] / 2))
        return [first, *inner, last]

    def to_json(self) -> dict[str, Any]:
        return {"type": "numeric", "edges": list(self.edges), "counts": list(self.counts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NumericHistogram:
        if data.get("type", "numeric") != "numeric":
            raise ValueError(f"not a numeric histogram: type {data.get('type')!r}")
        return cls(data["edges"], data["counts"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericHistogram):
            return NotImplemented
        return self.edges == other.edges and self.counts == other.counts

    def __repr__(self) -> str:
        return f"NumericHistogram(edges={list(self.edges)!r}, counts={self.counts!r})"


class CategoricalHistogram:
    """Counts of the reference's most frequent values, and of everything else (:data:`OTHER`).

    ``categories`` are fixed from the reference: its ``top_k`` most frequent values (ties
    broken by name, so the choice is deterministic), then :data:`OTHER`, always last. A
    value never seen in the reference, or too rare to get its own bin, counts as OTHER;
    a new value that takes over shows up as OTHER's share growing.
    """

    def __init__(self, categories: Sequence[str], counts: Sequence[float] | None = None) -> None:
        names = [str(category) for category in categories]
        if OTHER not in names:
            names.append(OTHER)
        if names[-1] != OTHER or names.count(OTHER) != 1:
            raise ValueError(f"{OTHER!r} must be the last category")
        if len(set(names)) != len(names):
            raise ValueError("categories must be distinct")
        self.categories: tuple[str, ...] = tuple(names)
        self.counts: list[float] = _checked_counts(counts, len(self.categories))
        self._index = {name: position for position, name in enumerate(self.categories)}

    @classmethod
    def from_reference(cls, values: Sequence[str], top_k: int = 20) -> CategoricalHistogram:
        """The ``top_k`` most frequent values (ties broken by name) and OTHER, counts filled."""
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        if len(values) == 0:
            raise ValueError("an empty reference has no categories")
        frequencies = Counter(str(value) for value in values)
        ranked = sorted(
            (name for name in frequencies if name != OTHER),
            key=lambda name: (-frequencies[name], name),
        )
        histogram = cls(ranked[:top_k])
        for name, count in frequencies.items():
            histogram.add(name, count)
        return histogram

    def empty_like(self) -> CategoricalHistogram:
        """The same categories, no counts: a new window against the same reference."""
        return CategoricalHistogram(self.categories)

    def add(self, value: str, weight: float = 1.0) -> None:
        """Count ``value``; one that is not a category counts as :data:`OTHER`."""
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError("weight must be finite and non-negative")
        self.counts[self._index.get(value, len(self.categories) - 1)] += weight

    def merge(self, other: CategoricalHistogram) -> None:
        """Add ``other``'s counts to this histogram's (in place); the categories must be equal."""
        if not isinstance(other, CategoricalHistogram) or other.categories != self.categories:
            raise ValueError("can only merge categorical histograms with the same categories")
        self.counts = [
            mine + theirs for mine, theirs in zip(self.counts, other.counts, strict=True)
        ]

    @property
    def total(self) -> float:
        return float(sum(self.counts))

    def labels(self) -> list[str]:
        return list(self.categories)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "categories": list(self.categories),
            "counts": list(self.counts),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CategoricalHistogram:
        if data.get("type", "categorical") != "categorical":
            raise ValueError(f"not a categorical histogram: type {data.get('type')!r}")
        return cls(data["categories"], data["counts"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalHistogram):
            return NotImplemented
        return self.categories == other.categories and self.counts == other.counts

    def __repr__(self) -> str:
        return f"CategoricalHistogram(categories={list(self.categories)!r}, counts={self.counts!r})"


Histogram: TypeAlias = NumericHistogram | CategoricalHistogram


def histogram_from_json(data: Mapping[str, Any]) -> Histogram:
    """The histogram ``to_json`` wrote, numeric or categorical by its ``type``."""
    kind = data.get("type")
    if kind == "numeric":
        return NumericHistogram.from_json(data)
    if kind == "categorical":
        return CategoricalHistogram.from_json(data)
    raise ValueError(f"unknown histogram type {kind!r}")
