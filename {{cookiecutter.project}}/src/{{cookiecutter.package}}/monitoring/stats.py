"""Two-sample statistics: does a current sample come from the reference's distribution?

One home for each, used by drift (training data against recent data, monitoring/drift.py),
the local canary (the stable server's score histogram against the canary's,
rollout/analysis.py) and, as its formula and constants, the PromQL query of the Argo Rollouts
analysis (rendered by rollout/k8s.py):

- ``psi``: the population stability index of two count vectors over the same bins,
  ``sum((c - r) * ln(c / r))`` over the bins' shares ``r`` and ``c``. Each count is smoothed by
  half a count (``SMOOTHING``), so an empty bin adds a bounded term instead of an infinite one.
  PSI is a chi-square statistic scaled by the sample sizes, so two samples of one distribution,
  ``n`` and ``m`` values over ``k`` bins, differ by ``(k - 1) * (1/n + 1/m)`` on average
  (``noise_psi``): 0.13 for a canary step's 150 and 446 scores over 20 bins, 0.036 for drift's
  smallest samples (500 rows each, 10 bins). That is subtracted (never below 0), so the value
  estimates the two distributions' own PSI and a threshold means the same at any sample size.
- ``chi2_homogeneity``: Pearson's chi-square test that two count vectors share one
  distribution (the p-value; no continuity correction, as
  ``scipy.stats.chi2_contingency(correction=False)``): PSI's noise term removes the noise on
  average, this tells a real difference from the scatter of a small sample.
- ``ks_wasserstein`` and ``ks_pvalue``: the two-sample Kolmogorov-Smirnov statistic and its
  p-value, and the Wasserstein-1 distance, of two sorted samples (as scipy computes them).
- ``jensen_shannon``: the Jensen-Shannon distance of two count vectors (natural log).
- Bins: ``quantile_counts`` (two samples over the reference's quantile bins) and
  ``pooled_bins`` (sparse neighbouring bins of a histogram merged).

This module imports nothing else of the package, so it also loads on its own from its file, and
scipy only inside the functions that need it: the manifest renderer and the canary loop import
it for PSI and its constants.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

SMOOTHING = 0.5  # pseudo-count added to every bin before PSI (additive smoothing)
MIN_BIN_COUNT = 10  # counts both samples together must have in a bin before it stands alone
KS_EXACT_N = 10_000  # effective size up to which the KS p-value uses n exactly (see ks_pvalue)


def psi(reference: ArrayLike, current: ArrayLike) -> float:
    """PSI of two count vectors over the same bins, smoothed, less ``noise_psi`` (at least 0).

    Both vectors need a positive total; a bin empty in both still counts towards ``k``, so
    leave out the bins that neither sample can reach.
    """
    ref, cur = np.asarray(reference, dtype="float64"), np.asarray(current, dtype="float64")
    bins, n_ref, n_cur = ref.size, float(ref.sum()), float(cur.sum())
    r = (ref + SMOOTHING) / (n_ref + SMOOTHING * bins)
    c = (cur + SMOOTHING) / (n_cur + SMOOTHING * bins)
    raw = float(np.sum((c - r) * np.log(c / r)))
    return max(raw - noise_psi(bins, n_ref, n_cur), 0.0)


def noise_psi(bins: int, n_reference: float, n_current: float) -> float:
    """The average PSI between two samples of one distribution (a chi-square's expectation,
    ``bins - 1``, over the samples' effective size)."""
    return (bins - 1) * (1 / n_reference + 1 / n_current)


def significant(
    value: float | None, limit: float, p_value: float | None, significance: float
) -> bool:
    """``value`` beyond ``limit``, and its test says that is not the noise of a small sample:
    how the canary, drift's prediction shift and model quality read a statistic."""
    return value is not None and value > limit and p_value is not None and p_value < significance


def chi2_homogeneity(reference: ArrayLike, current: ArrayLike) -> float:
    """p-value of Pearson's chi-square test that both count vectors share one distribution."""
    from scipy.stats import chi2

    table = np.vstack([reference, current]).astype("float64")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0  # one category in both samples: nothing can differ
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(chi2.sf(statistic, table.shape[1] - 1))


def ks_wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein-1 distance of two sorted, non-empty, NaN-free samples.

    Both come from the two empirical CDFs evaluated at the merged values: KS is the largest gap,
    Wasserstein the integral of the gap (gap times the step to the next distinct value).
    """
    n_ref, n_cur = reference.size, current.size
    merged = np.concatenate([reference, current])
    # Two sorted runs: the stable sort (timsort) merges them in linear time, reference first
    # among equal values, as scipy's searchsorted(side="right").
    order = np.argsort(merged, kind="stable")
    merged = merged[order]
    ref_upto = np.cumsum(order < n_ref)  # reference values at or before each position
    # The CDFs only change at the last of a run of equal values.
    ends = np.flatnonzero(np.append(merged[1:] != merged[:-1], True))
    # F_ref - F_cur = upto / n_ref - (position + 1 - upto) / n_cur, in two passes
    gap = ref_upto[ends] * (1 / n_ref + 1 / n_cur) - (ends + 1) / n_cur
    np.abs(gap, out=gap)
    return float(gap.max()), float(gap[:-1] @ np.diff(merged[ends]))


def ks_pvalue(statistic: float, n_ref: int, n_cur: int) -> float:
    """Two-sided p-value of the two-sample KS statistic.

    Up to an effective size n = n_ref * n_cur / (n_ref + n_cur) of 10,000 this is Smirnov's
    distribution for n, exactly scipy's ``ks_2samp(method="asymp")``. Above, scipy's evaluation
    of that distribution takes up to a second (it is linear in n), so Kolmogorov's limiting
    distribution of sqrt(n) * D is used instead: it differs by less than 3 % (relative) for
    p-values above 1e-8 and by less than 0.3 % at a million rows, microseconds per column.
    """
    from scipy.special import kolmogorov
    from scipy.stats import kstwo

    effective = round(n_ref * n_cur / (n_ref + n_cur))
    if effective < 1:
        return 1.0  # one value against one value: no evidence either way (scipy: NaN)
    if effective <= KS_EXACT_N:
        return float(np.clip(kstwo.sf(statistic, effective), 0, 1))
    return float(np.clip(kolmogorov(math.sqrt(effective) * statistic), 0, 1))


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) of two count vectors over the same categories."""
    p = reference / reference.sum()
    q = current / current.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return float(np.sqrt(max((left.sum() + right.sum()) / 2, 0.0)))


# --- bins ------------------------------------------------------------------------------------


def quantile_counts(
    reference: np.ndarray, current: np.ndarray, bins: int
) -> tuple[np.ndarray, ...]:
    """Counts of two sorted samples in the reference's quantile bins (right-closed)."""
    if reference.size == 0:
        edges = reference  # no values to cut at: one bin holds all of the current values
    else:
        edges = np.unique(reference[(np.arange(1, bins) * reference.size) // bins])
    return tuple(
        np.diff(np.concatenate([[0], np.searchsorted(s, edges, side="right"), [s.size]]))
        for s in (reference, current)
    )


def pooled_bins(
    reference: list[float], current: list[float], minimum: float = MIN_BIN_COUNT
) -> tuple[list[float], list[float]]:
    """Adjacent bins merged until each holds ``minimum`` values of both samples together.

    A step of a canary sees a few dozen scores spread over 20 buckets: most are nearly empty,
    which inflates PSI and makes the chi-square test reject far more often than its level says.
    Merging sparse neighbours (the usual rule of about five expected per cell) keeps both honest.
    """
    merged_ref, merged_cur, ref, cur = [], [], 0.0, 0.0
    for a, b in zip(reference, current, strict=True):
        ref, cur = ref + a, cur + b
        if ref + cur >= minimum:
            merged_ref.append(ref)
            merged_cur.append(cur)
            ref, cur = 0.0, 0.0
    if (ref or cur) and merged_ref:  # a sparse tail joins the last full bin
        merged_ref[-1] += ref
        merged_cur[-1] += cur
    elif ref or cur:
        merged_ref, merged_cur = [ref], [cur]
    return merged_ref, merged_cur
