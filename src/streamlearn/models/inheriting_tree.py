"""A Hoeffding tree whose new naive-Bayes leaves predict with their parent's likelihoods.

River's ``HoeffdingTreeClassifier`` with ``leaf_prediction="nb"`` gives each leaf made by
a split the class counts of its branch and no attribute statistics, so until it has
learned some examples of its own its naive Bayes is the class prior alone: every input
that reaches it gets the same score. On a click stream that is a fall in served AUC
after every split (docs/learning.md: up to 0.15 on the same impressions), and a tree
that spends minutes ranking worse than its own earlier versions.

Here a leaf made by a split keeps a reference to the attribute statistics its parent
predicted with (the splitters of the leaf that split, shared by its children, never
copied) and predicts with them and its own class counts until it has learned
``inherit_until`` of weight (examples, unweighted; by default the grace period: when it
could first split), then with its own, as River's leaf does. Only predictions change:
splits read the leaf's own statistics, so the tree grows exactly as River's does (same
splits, same cost per example), and a grown leaf predicts exactly as River's.

It is an approximation: the parent's likelihood of the feature it split on is applied on
top of class counts already conditioned on that split, so that feature's evidence counts
twice in a young leaf. Measured (docs/learning.md), it ranks far better than the class
counts alone. With ``nominal_split_inherited=False`` a leaf made by a split on a category
inherits every likelihood but that feature's: within the leaf the feature has one value
(River's nominal splits have a branch per value unless ``binary_split``), which its
class counts already hold. A split on a number, or a binary one, keeps the feature's
likelihood (a side spans values).
"""

from __future__ import annotations

from typing import Any

from river import tree
from river.tree.nodes.htc_nodes import LeafNaiveBayes
from river.tree.splitter import Splitter
from river.tree.utils import do_naive_bayes_prediction


class InheritingNaiveBayesLeaf(LeafNaiveBayes):
    """A naive-Bayes leaf predicting with ``inherited`` splitters while it is young."""

    def __init__(
        self,
        stats: dict[Any, float],
        depth: int,
        splitter: Splitter,
        inherited: dict[Any, Any] | None,
        until: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(stats, depth, splitter, **kwargs)  # type: ignore[no-untyped-call]
        self.inherited = inherited
        """The parent's attribute statistics (None once the leaf has its own)."""
        self.until = until
        self.inherited_at = self.total_weight
        """The class weight the leaf started with (its branch's share of the parent's)."""

    def predicting_splitters(self) -> dict[Any, Any]:
        """The attribute statistics this leaf predicts with now."""
        return self.splitters if self.inherited is None else self.inherited

    def prediction(self, x: dict[Any, Any], *, tree: Any = None) -> dict[Any, float]:
        # River's conditions for naive Bayes (an active leaf over the tree's threshold).
        if (
            self.inherited is not None
            and self.is_active()  # type: ignore[no-untyped-call]
            and (tree is None or self.total_weight >= tree.nb_threshold)
        ):
            inherited: dict[Any, float] = do_naive_bayes_prediction(x, self.stats, self.inherited)
            return inherited
        own: dict[Any, float] = super().prediction(x, tree=tree)  # type: ignore[no-untyped-call]
        return own

    def learn_one(self, x: dict[Any, Any], y: Any, *, w: float = 1.0, tree: Any = None) -> None:
        super().learn_one(x, y, w=w, tree=tree)  # type: ignore[no-untyped-call]
        if self.inherited is not None and self.total_weight - self.inherited_at >= self.until:
            self.inherited = None


class InheritingHoeffdingTreeClassifier(tree.HoeffdingTreeClassifier):
    """River's Hoeffding tree with :class:`InheritingNaiveBayesLeaf` leaves after splits
    (module docstring). The parameters are River's (named, so River can clone it), plus
    ``inherit_until`` (None: the grace period, whatever it is set to) and
    ``nominal_split_inherited`` (False: a leaf made by a split on a category does not
    inherit that feature's likelihood)."""

    def __init__(
        self,
        grace_period: int = 200,
        max_depth: int | None = None,
        split_criterion: str = "info_gain",
        delta: float = 1e-7,
        tau: float = 0.05,
        leaf_prediction: str = "nb",
        nb_threshold: int = 0,
        nominal_attributes: list[Any] | None = None,
        splitter: Splitter | None = None,
        binary_split: bool = False,
        min_branch_fraction: float = 0.01,
        max_share_to_split: float = 0.99,
        max_size: float = 100.0,
        memory_estimate_period: int = 1000000,
        stop_mem_management: bool = False,
        remove_poor_attrs: bool = False,
        merit_preprune: bool = True,
        inherit_until: int | None = None,
        nominal_split_inherited: bool = True,
    ) -> None:
        super().__init__(
            grace_period=grace_period,
            max_depth=max_depth,
            split_criterion=split_criterion,
            delta=delta,
            tau=tau,
            leaf_prediction=leaf_prediction,
            nb_threshold=nb_threshold,
            nominal_attributes=nominal_attributes,
            splitter=splitter,
            binary_split=binary_split,
            min_branch_fraction=min_branch_fraction,
            max_share_to_split=max_share_to_split,
            max_size=max_size,
            memory_estimate_period=memory_estimate_period,
            stop_mem_management=stop_mem_management,
            remove_poor_attrs=remove_poor_attrs,
            merit_preprune=merit_preprune,
        )
        self.inherit_until = inherit_until
        self.nominal_split_inherited = nominal_split_inherited

    def _new_leaf(self, initial_stats: dict[Any, float] | None = None, parent: Any = None) -> Any:
        leaf = super()._new_leaf(initial_stats, parent)  # type: ignore[no-untyped-call]
        # Only leaves made by a split: a branch (a new categorical value) has no statistics.
        if type(leaf) is not LeafNaiveBayes or not isinstance(parent, LeafNaiveBayes):
            return leaf
        inherited = (
            parent.predicting_splitters()
            if isinstance(parent, InheritingNaiveBayesLeaf)
            else parent.splitters
        )
        # Trees pickled before the parameter existed inherited every likelihood.
        if not getattr(self, "nominal_split_inherited", True):
            inherited = self._children_inherit(parent, inherited)
        until = self.grace_period if self.inherit_until is None else self.inherit_until
        return InheritingNaiveBayesLeaf(leaf.stats, leaf.depth, self.splitter, inherited, until)

    def _children_inherit(self, parent: LeafNaiveBayes, splitters: dict[Any, Any]) -> Any:
        """What the leaves a split of ``parent`` makes inherit of its ``splitters``: found
        for the first child and kept on the parent for its siblings (one computation per
        split, one dict they share, as the whole dict is shared otherwise). The parent is
        dropped once the split is made, and what is kept on it with it."""
        kept = parent.__dict__.get("_children_inherit")
        if kept is None:
            split_on = self._nominal_split_feature(parent)
            kept = splitters
            if split_on is not None:
                kept = {f: s for f, s in splitters.items() if f != split_on}
            parent.__dict__["_children_inherit"] = kept
        return kept

    def _nominal_split_feature(self, leaf: LeafNaiveBayes) -> Any | None:
        """The feature ``leaf`` is being split on, if it is a category's with a branch per
        value (else None: a number's, or ``binary_split``'s value-or-not, whose second
        branch spans values): the split River's ``_attempt_to_split`` chose, found again
        the way it found it (its best suggestion, computed from the leaf's statistics,
        which the split has not changed)."""
        criterion = self._new_split_criterion()  # type: ignore[no-untyped-call]
        suggestions = leaf.best_split_suggestions(criterion, self)
        suggestions.sort()
        chosen = suggestions[-1]
        if chosen.numerical_feature or not chosen.multiway_split:
            return None
        return chosen.feature
