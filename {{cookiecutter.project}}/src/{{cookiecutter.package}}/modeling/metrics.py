"""The one table of holdout metrics: each knows its direction and how it is computed.

Evaluation, permutation importance, the quality gate, promotion and both reports read it, so
adding a metric here adds it everywhere. Every question that depends on a metric's direction
(which value is better, whether a limit is met, which params.yaml key holds the limit, the words
for either side) is answered by ``Metric``: no other module reads ``higher_is_better``
(tests/test_architecture.py checks). scikit-learn is imported only when a metric is computed:
settings validation reads this table in every command and should stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
Change = Literal["better", "worse", "same"]

# Differences this small are rounding noise (0.83 - 0.82 < 0.01 in floating point).
ROUNDING = 1e-12
# Metrics are rounded to 6 places (``compute``): closer than half of the last place is the same.
SAME = 5e-7


class UnknownMetric(ValueError):
    """A metric name the table does not hold; the message lists those it does."""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    # (truth, scores, predicted labels) -> value; scores are P(positive class).
    compute: Callable[[np.ndarray, np.ndarray, np.ndarray], float]

    def better_by(self, now: float, then: float) -> float:
        """How much better ``now`` is than ``then`` in this metric's direction (< 0: worse)."""
        return now - then if self.higher_is_better else then - now

    def regression(self, before: float, after: float) -> float:
        """How much worse ``after`` is than ``before``: positive when worse, in either direction."""
        return self.better_by(before, after)

    def holds(self, before: float, after: float, allowance: float) -> bool:
        """``after`` is worse than ``before`` by at most ``allowance`` (give or take rounding)."""
        return self.regression(before, after) <= allowance + ROUNDING

    def meets(self, value: float, limit: float) -> bool:
        """``value`` is at or beyond ``limit`` (a floor, or a ceiling), give or take rounding."""
        return value >= limit - ROUNDING if self.higher_is_better else value <= limit + ROUNDING

    def change(self, now: float, then: float) -> Change:
        """``now`` against ``then`` in words, equal when they agree to the 6 places kept."""
        if abs(now - then) < SAME:
            return "same"
        return "better" if self.better_by(now, then) > 0 else "worse"

    def side(self, value: float, limit: float) -> str:
        """Where ``value`` lies against ``limit``: 'at or above' / 'below' (or at or below / above
        for a lower-is-better metric)."""
        meets = self.meets(value, limit)
        if self.higher_is_better:
            return "at or above" if meets else "below"
        return "at or below" if meets else "above"

    @property
    def bound(self) -> Literal["floor", "ceiling"]:
        """What a holdout limit is for this metric: a floor, or a ceiling."""
        return "floor" if self.higher_is_better else "ceiling"

    @property
    def limit_key(self) -> Literal["at_least", "at_most"]:
        """The params.yaml ``evaluate`` key that holds this metric's holdout limit."""
        return "at_least" if self.higher_is_better else "at_most"

    @property
    def direction(self) -> Literal["higher", "lower"]:
        """Which way is better, in a word."""
        return "higher" if self.higher_is_better else "lower"


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


def metric_named(name: str) -> Metric:
    """The metric called ``name``; an unknown name is an error naming the known ones."""
    if name not in METRICS:
        raise UnknownMetric(
            f"metric {name!r} has no known direction; known metrics: {sorted(METRICS)}"
        )
    return METRICS[name]


def metrics_table(
    now: Mapping[str, float],
    then: Mapping[str, float] | None,
    primary: str,
    columns: tuple[str, str],
) -> list[str]:
    """``now`` against ``then`` as markdown lines, in table order, with the footnote.

    ``columns`` names the two sides, ``then``'s first. The PR report, the retraining report
    and the job summaries that print either all render metrics through this one table.
    """
    lines = [f"| metric | {columns[0]} | {columns[1]} | change | |", "|---|--:|--:|--:|---|"]
    marks = {"better": "✅ better", "worse": "🔻 worse", "same": "same"}
    for name in [name for name in METRICS if name in now]:
        after, before = now[name], (then or {}).get(name)
        star = " ★" if name == primary else ""
        if before is None:
            lines.append(f"| {name}{star} | - | {after:.4f} | | new |")
            continue
        mark = marks[METRICS[name].change(after, before)]
        lines.append(
            f"| {name}{star} | {before:.4f} | {after:.4f} | {after - before:+.4f} | {mark} |"
        )
    lower = [name for name, spec in METRICS.items() if spec.direction == "lower"]
    return [
        *lines,
        "",
        f"★ primary metric (`evaluate.primary_metric`). Lower is better for: {', '.join(lower)}.",
        "",
    ]
