"""Prediction shift without labels: has what the model answers moved away from training?

Two signals, each the served window against the model's own scores of its training split:

- the share of positive predictions (score at or above ``evaluate.threshold``): a model that
  suddenly flags twice as many customers is worth a look long before outcomes are known;
- the score distribution, over ``drift.bins`` quantile bins of the training scores.

Both are judged as the canary judges a score shift: the PSI of the two histograms, less the
PSI that sampling noise alone gives samples of their sizes, must exceed ``drift.psi`` AND a
chi-square test of homogeneity must call it unlikely noise (p-value below ``drift.chi2_pvalue``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from {{ cookiecutter.package }}.config import DriftSettings
from {{ cookiecutter.package }}.monitoring.stats import chi2_homogeneity, psi, quantile_counts, significant

# --- the two signals --------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    name: str
    psi: float
    p_value: float
    shifted: bool
    reference: float  # positive share, or mean score
    current: float

    def reason(self) -> str:
        return (
            f"{self.name} {self.reference:.3f} -> {self.current:.3f} (PSI {self.psi:.3f}, "
            f"chi-square p={self.p_value:.2g})"
        )


def _signal(
    name: str, counts: tuple[np.ndarray, np.ndarray], values: tuple[float, float], drift: Any
) -> Signal:
    value, p = psi(*counts), chi2_homogeneity(*counts)
    shifted = significant(value, drift.psi, p, drift.chi2_pvalue)
    return Signal(name, round(value, 6), float(f"{p:.4g}"), shifted, *values)


def prediction_shift(
    reference_scores: np.ndarray, current_scores: np.ndarray, threshold: float, drift: DriftSettings
) -> list[Signal]:
    """The positive share and the score distribution of ``current`` against ``reference``."""
    ref = np.sort(np.asarray(reference_scores, dtype="float64"))
    cur = np.sort(np.asarray(current_scores, dtype="float64"))
    positive = [(s >= threshold).sum() for s in (ref, cur)]
    classes = tuple(np.array([s.size - k, k]) for s, k in zip((ref, cur), positive, strict=True))
    shares = (positive[0] / ref.size, positive[1] / cur.size)
    bins = quantile_counts(ref, cur, drift.bins)
    return [
        _signal("positive share", classes, shares, drift),
        _signal("score distribution", bins, (float(ref.mean()), float(cur.mean())), drift),
    ]


def to_dict(signals: list[Signal]) -> dict[str, Any]:
    return {
        "shifted": [signal.name for signal in signals if signal.shifted],
        "signals": {signal.name: asdict(signal) for signal in signals},
    }
