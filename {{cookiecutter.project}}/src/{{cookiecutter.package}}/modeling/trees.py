"""A fitted HistGradientBoostingClassifier's trees as flat NumPy arrays, for a few rows at a time.

For one row, the classifier's own ``predict_proba`` costs about 0.5 ms, nearly all of it per-call
and per-tree overhead (input checks, then one Cython call per tree) rather than arithmetic. This
module reads the trees once into flat arrays (every tree's nodes one after another) and answers
with a few NumPy operations for all trees at once:

1. every node's decision for the row, in one step: go left when the feature is <= the threshold,
   or, for a missing value (NaN), where the tree sent missing values in training;
2. from each tree's root, one step down per level of the deepest tree (leaves point to
   themselves, so shallower trees wait at their leaf);
3. the leaf values added to the baseline tree by tree, in the classifier's order, then the
   logistic function: the classifier's own arithmetic, so the probabilities are bit-identical
   (tests/test_model.py and tests/test_fast_path.py check every path against training).

Only binary classifiers with numeric splits are compiled; ``compile_trees`` returns None for
categorical splits (bitsets), multiclass and anything not a HistGradientBoostingClassifier, and
the caller keeps the classifier's own ``predict_proba``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier

try:  # scikit-learn's private node layout: a release that moves it keeps the classifier's path
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
except ImportError:  # pragma: no cover - depends on the installed scikit-learn
    PREDICTOR_RECORD_DTYPE = None


@dataclass(frozen=True)
class CompiledTrees:
    """All trees of one binary classifier, node arrays end to end."""

    width: int  # input columns the classifier was fitted on
    feature: np.ndarray  # per node: the input column it splits on (0 for leaves)
    threshold: np.ndarray  # per node: go left when the value is <= this
    missing_left: np.ndarray  # per node: where a NaN goes
    left: np.ndarray  # per node: index of the left child in these arrays (leaves: itself)
    right: np.ndarray
    value: np.ndarray  # per node: the leaf value (learning rate included), 0 elsewhere
    roots: np.ndarray  # per tree, in the classifier's order: index of its root
    depth: int  # levels of the deepest tree
    baseline: float

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities of shape (rows, 2), as the classifier's ``predict_proba``."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"expected rows of {self.width} columns, got shape {rows.shape}")
        count, nodes = len(rows), len(self.feature)
        values = rows[:, self.feature]  # (rows, nodes): each node's input value
        go_left = np.where(np.isnan(values), self.missing_left, values <= self.threshold)
        # Row r's copy of node i sits at r * nodes + i, so one flat take steps every tree of
        # every row at once.
        first = (np.arange(count) * nodes)[:, None]
        child = (np.where(go_left, self.left, self.right) + first).ravel()
        at = (self.roots + first).ravel()
        for _ in range(self.depth):
            at = child[at]
        leaves = self.value[at.reshape(count, len(self.roots)) - first]
        # The classifier adds the trees' values to the baseline one tree at a time; cumsum
        # keeps that order (a plain sum would pair them up and round differently).
        raw = np.cumsum(
            np.concatenate([np.full((count, 1), self.baseline), leaves], axis=1), axis=1
        )[:, -1]
        proba = np.empty((count, 2))
        proba[:, 1] = expit(raw)
        proba[:, 0] = 1 - proba[:, 1]
        return proba


def compile_trees(classifier: Any) -> CompiledTrees | None:
    """The fitted ``classifier`` compiled; None when it is anything this cannot evaluate."""
    if PREDICTOR_RECORD_DTYPE is None or not isinstance(classifier, HistGradientBoostingClassifier):
        return None
    predictors = getattr(classifier, "_predictors", None)
    baseline = np.asarray(getattr(classifier, "_baseline_prediction", np.empty(0)))
    if (
        not predictors
        or classifier.n_trees_per_iteration_ != 1
        or len(classifier.classes_) != 2
        or baseline.size != 1
        or (classifier.is_categorical_ is not None and classifier.is_categorical_.any())
    ):
        return None
    trees = [iteration[0].nodes for iteration in predictors]
    if any(
        nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes["is_categorical"].any() for nodes in trees
    ):
        return None
    sizes = np.array([len(nodes) for nodes in trees])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nodes = np.concatenate(trees)
    shift = np.repeat(offsets, sizes)
    leaf = nodes["is_leaf"].astype(bool)
    itself = np.arange(len(nodes))
    return CompiledTrees(
        width=int(classifier.n_features_in_),
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=np.where(leaf, itself, nodes["left"].astype(np.intp) + shift),
        right=np.where(leaf, itself, nodes["right"].astype(np.intp) + shift),
        value=np.where(leaf, nodes["value"], 0.0),
        roots=offsets.astype(np.intp),
        depth=int(max(nodes["depth"].max() for nodes in trees)),
        baseline=float(baseline.ravel()[0]),
    )
