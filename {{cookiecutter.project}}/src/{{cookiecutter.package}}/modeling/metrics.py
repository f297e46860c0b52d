"""The one table of holdout metrics: each knows its direction and how it is computed.

Evaluation, permutation importance, the quality gate, promotion and the report all read it, so
adding a metric here adds it everywhere. scikit-learn is imported only when a metric is
computed: settings validation reads this table in every command and should stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    # (truth, scores, predicted labels) -> value; scores are P(positive class).
    compute: Callable[[np.ndarray, np.ndarray, np.ndarray], float]

    def regression(self, before: float, after: float) -> float:
        """How much worse ``after`` is than ``before``: positive when worse, in either direction."""
        return (before - after) if self.higher_is_better else (after - before)


def _accuracy(truth: np.ndarray, _: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return accuracy_score(truth, predicted)


def _precision(truth: np.ndarray, _: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import precision_score

    return precision_score(truth, predicted, zero_division=0)


def _recall(truth: np.ndarray, _: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import recall_score

    return recall_score(truth, predicted, zero_division=0)


def _f1(truth: np.ndarray, _: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return f1_score(truth, predicted, zero_division=0)


def _roc_auc(truth: np.ndarray, scores: np.ndarray, _: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(truth, scores)


def _log_loss(truth: np.ndarray, scores: np.ndarray, _: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return log_loss(truth, scores, labels=[0, 1])


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in [
        Metric("accuracy", True, _accuracy),
        Metric("precision", True, _precision),
        Metric("recall", True, _recall),
        Metric("f1", True, _f1),
        Metric("roc_auc", True, _roc_auc),
        Metric("log_loss", False, _log_loss),
    ]
}


def compute(
    truth: np.ndarray, scores: np.ndarray, threshold: float, names: Iterable[str] = METRICS
) -> dict[str, float]:
    """The named metrics (all by default) of ``scores`` against ``truth``, rounded to 6 places."""
    predicted = (scores >= threshold).astype(int)
    return {
        name: round(float(METRICS[name].compute(truth, scores, predicted)), 6) for name in names
    }
