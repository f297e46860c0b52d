"""Data drift: has the current data moved away from the reference the model was trained on?

Each column is compared with statistics chosen by its kind in the data contract (``int`` and
``float`` columns are numeric, ``str`` columns categorical), all from monitoring/stats.py:

- numeric: the two-sample Kolmogorov-Smirnov statistic and its p-value (as
  ``scipy.stats.ks_2samp(method="asymp")``, see ``ks_pvalue``), PSI over ``bins`` quantile bins of
  the reference, and the Wasserstein distance divided by the reference's standard deviation
  (population std, floored at 0.001 so a constant reference column stays finite);
- categorical: PSI over the categories, the chi-square test of homogeneity on the 2 x K table of
  counts (no continuity correction) and the Jensen-Shannon distance (natural log, so between 0
  and sqrt(ln 2) = 0.83, as ``scipy.spatial.distance.jensenshannon``).

Missing values count as a bin (numeric PSI) or a category of their own (categorical statistics);
KS and Wasserstein compare the non-missing values. Categories seen only in the current sample are
categories like any other. PSI is the canary's: half a count of smoothing per bin, less the PSI
that sampling noise gives samples of these sizes (0.036 at 500 rows each over 10 bins), over the
bins that either sample reached.

The verdict rule, chosen to keep false positives low on large samples: with a million rows every
p-value is tiny for a shift nobody cares about, and with a few hundred rows an effect size is
noisy. So a column drifts when

1. its effect size crosses its threshold (numeric: normalised Wasserstein, or PSI when
   ``numeric_stat: psi``; categorical: Jensen-Shannon, or PSI when ``categorical_stat: psi``)
   AND its test rejects "same distribution" (KS p-value below ``ks_pvalue``, chi-square p-value
   below ``chi2_pvalue``); or
2. its share of missing values moves by more than ``null_share`` (absolute) AND the chi-square
   test of the 2 x 2 missing / present table gives a p-value below ``chi2_pvalue``.

Each path needs its test to reject, so on two samples of one distribution a column is flagged
with probability at most ``ks_pvalue + chi2_pvalue`` (categorical: ``2 * chi2_pvalue``), and in
practice far less, as the effect size must cross too: on 200 pairs of same-distribution samples
of twice ``min_rows`` rows (tests/test_drift.py) 2 of 800 columns were flagged, against 9 by the
p-values alone and about 15 by the effect sizes alone. Thresholds are global with overrides per
column (``features: {name: {wasserstein: 0.2}}``). The prediction score, when the caller passes
the model's scores of both samples, is judged as one more numeric column. The data drifts when
any column (or the score) drifts. Samples smaller than ``min_rows`` are refused with a clear
error rather than given a verdict.

Everything is vectorised with numpy: one sort per numeric column per sample, one merge of the two
sorted samples for KS and Wasserstein (the integral of |F_ref - F_cur| over the merged values,
exactly as scipy computes it), category counts through ``pd.factorize`` and ``np.bincount``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from {{ cookiecutter.package }}.config import DriftLimits, DriftSettings
from {{ cookiecutter.package }}.monitoring.stats import (
    chi2_homogeneity,
    jensen_shannon,
    ks_pvalue,
    ks_wasserstein,
    psi,
    quantile_counts,
)

NUMERIC_KINDS = frozenset({"int", "float"})
CATEGORICAL_KINDS = frozenset({"str"})
MIN_STD = 1e-3  # floor of the Wasserstein normaliser (a constant reference column)
SCORE = "prediction score"


class DriftError(ValueError):
    """Inputs the drift check cannot judge; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class FeatureDrift:
    """The statistics and verdict of one column (or of the prediction score)."""

    name: str
    kind: str  # numeric | categorical
    statistics: dict[str, float | None]
    thresholds: dict[str, float]
    null_share: tuple[float, float]  # reference, current
    decided_by: str  # the statistic whose threshold decided the verdict
    drifted: bool
    reason: str


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    score: FeatureDrift | None
    reference_rows: int
    current_rows: int

    @property
    def results(self) -> tuple[FeatureDrift, ...]:
        return self.features + ((self.score,) if self.score else ())

    @property
    def drifted_columns(self) -> list[str]:
        return [result.name for result in self.results if result.drifted]

    @property
    def drifted(self) -> bool:
        return any(result.drifted for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        """What ``drift.json`` holds."""
        return {
            "drifted": self.drifted,
            "drifted_columns": self.drifted_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "features": {result.name: _result_dict(result) for result in self.features},
            "score": _result_dict(self.score) if self.score else None,
        }

    def markdown(self) -> str:
        """The "Data drift" section of the model report: drifted columns first."""
        results = sorted(self.results, key=lambda r: (not r.drifted, -_severity(r), r.name))
        names = ", ".join(f"`{name}`" for name in self.drifted_columns)
        checked = len(self.results)
        headline = (
            f"**Drift in {len(self.drifted_columns)} of {checked} columns: {names}.**"
            if self.drifted
            else f"**No drift in {checked} columns.**"
        )
        lines = [
            "## Data drift",
            "",
            f"{headline} Reference {self.reference_rows:,} rows, "
            f"current {self.current_rows:,} rows.",
            "",
            "| column | kind | drift | decided by | value | threshold | test p-value | PSI "
            "| missing (ref → cur) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results:
            test = r.statistics.get("ks_pvalue", r.statistics.get("chi2_pvalue"))
            lines.append(
                f"| `{r.name}` | {r.kind} | {'**yes**' if r.drifted else 'no'} | {r.decided_by} "
                f"| {_fmt(r.statistics.get(r.decided_by))} | {_fmt(r.thresholds[r.decided_by])} "
                f"| {_fmt(test)} | {_fmt(r.statistics['psi'])} "
                f"| {_percent(r.null_share[0])} → {_percent(r.null_share[1])} |"
            )
        return "\n".join(lines) + "\n"


def drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str],
    settings: DriftSettings,
    scores: tuple[ArrayLike, ArrayLike] | None = None,
) -> DriftReport:
    """Compare each column named in ``kinds`` (column -> int | float | str) between the samples.

    ``scores``: the model's scores of the reference and current rows, judged as one more numeric
    column; the caller computes them (drift needs no model).
    """
    _check_inputs(reference, current, kinds, settings)
    results = []
    for name, kind in kinds.items():
        if kind in NUMERIC_KINDS:
            results.append(
                _judge_numeric(name, _floats(reference[name]), _floats(current[name]), settings)
            )
        else:
            results.append(_judge_categorical(name, reference[name], current[name], settings))
    score = None
    if scores is not None:
        ref_scores, cur_scores = (np.asarray(s, dtype="float64").ravel() for s in scores)
        if min(ref_scores.size, cur_scores.size) < settings.min_rows:
            raise DriftError(
                f"scores of {ref_scores.size} reference and {cur_scores.size} current rows; "
                f"drift needs at least {settings.min_rows} of each (drift.min_rows)"
            )
        score = _judge_numeric(SCORE, ref_scores, cur_scores, settings)
    return DriftReport(tuple(results), score, len(reference), len(current))


def write_report(report: DriftReport, json_path: Path, markdown_path: Path | None = None) -> None:
    """Write ``drift.json`` (and the markdown section) atomically: a reader never sees half."""
    _write_atomic(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
    if markdown_path is not None:
        _write_atomic(markdown_path, report.markdown())


# --- verdicts --------------------------------------------------------------------------------


def _judge_numeric(
    name: str, reference: np.ndarray, current: np.ndarray, settings: DriftSettings
) -> FeatureDrift:
    limits = settings.limits(name)
    ref, ref_nulls = _sorted_present(reference)
    cur, cur_nulls = _sorted_present(current)
    stats: dict[str, float | None] = {"ks": None, "ks_pvalue": None, "wasserstein": None}
    if ref.size and cur.size:
        ks, distance = ks_wasserstein(ref, cur)
        stats["ks"] = ks
        stats["ks_pvalue"] = ks_pvalue(ks, ref.size, cur.size)
        stats["wasserstein"] = distance / max(float(ref.std()), MIN_STD)
    ref_counts, cur_counts = quantile_counts(ref, cur, settings.bins)
    stats["psi"] = _psi(np.append(ref_counts, ref_nulls), np.append(cur_counts, cur_nulls))
    return _verdict(name, "numeric", stats, limits, (ref_nulls, cur_nulls), (ref.size, cur.size))


def _judge_categorical(
    name: str, reference: pd.Series, current: pd.Series, settings: DriftSettings
) -> FeatureDrift:
    limits = settings.limits(name)
    codes, categories = pd.factorize(pd.concat([reference, current], ignore_index=True))
    slots = len(categories) + 1  # slot 0: missing
    ref_counts = np.bincount(codes[: len(reference)] + 1, minlength=slots)
    cur_counts = np.bincount(codes[len(reference) :] + 1, minlength=slots)
    stats: dict[str, float | None] = {
        "psi": _psi(ref_counts, cur_counts),
        "chi2_pvalue": chi2_homogeneity(ref_counts, cur_counts),
        "jensen_shannon": jensen_shannon(ref_counts, cur_counts),
    }
    nulls = (int(ref_counts[0]), int(cur_counts[0]))
    present = (len(reference) - nulls[0], len(current) - nulls[1])
    return _verdict(name, "categorical", stats, limits, nulls, present)


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over the bins either sample reached: one that neither did (the missing values' bin
    when no value is missing) says nothing about them and would only add to PSI's noise term."""
    reached = reference + current > 0
    return psi(reference[reached], current[reached])


def _verdict(
    name: str,
    kind: str,
    stats: dict[str, float | None],
    limits: DriftLimits,
    nulls: tuple[int, int],
    present: tuple[int, int],
) -> FeatureDrift:
    """Apply the rule of the module docstring to one column's statistics."""
    effect, test = (
        (limits.numeric_stat, "ks_pvalue")
        if kind == "numeric"
        else (limits.categorical_stat, "chi2_pvalue")
    )
    rows = (nulls[0] + present[0], nulls[1] + present[1])
    shares = (nulls[0] / rows[0], nulls[1] / rows[1])
    stats["null_share"] = abs(shares[1] - shares[0])
    stats["null_share_pvalue"] = chi2_homogeneity(  # rows: missing / present per sample
        np.array([nulls[0], present[0]]), np.array([nulls[1], present[1]])
    )
    thresholds = {key: float(getattr(limits, key)) for key in (effect, test, "null_share")}
    value, p = stats[effect], stats[test]
    if value is None or p is None:
        moved, reason = False, f"{effect} undefined: one sample has no values"
    elif value <= getattr(limits, effect):
        moved, reason = False, f"{effect} {value:.3g} <= {getattr(limits, effect)}"
    elif p >= getattr(limits, test):
        moved = False
        reason = f"{effect} {value:.3g} > {getattr(limits, effect)} but {test} {p:.3g} is not"
        reason += f" below {getattr(limits, test)}"
    else:
        moved = True
        reason = f"{effect} {value:.3g} > {getattr(limits, effect)}, {test} {p:.3g}"
    nulls_moved = (
        stats["null_share"] > limits.null_share and stats["null_share_pvalue"] < limits.chi2_pvalue
    )
    decided_by = effect
    if nulls_moved and not moved:
        decided_by = "null_share"
        moved_by = f"{_percent(shares[0])} -> {_percent(shares[1])}"
        reason = f"missing share moved {moved_by} (> {limits.null_share})"
    elif nulls_moved:
        reason += f"; missing share moved {_percent(shares[0])} -> {_percent(shares[1])}"
    return FeatureDrift(
        name, kind, stats, thresholds, shares, decided_by, moved or nulls_moved, reason
    )


# --- helpers ---------------------------------------------------------------------------------


def _check_inputs(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    kinds: Mapping[str, str],
    settings: DriftSettings,
) -> None:
    known = NUMERIC_KINDS | CATEGORICAL_KINDS
    unknown = {name: kind for name, kind in kinds.items() if kind not in known}
    if unknown:
        raise DriftError(f"unknown column kinds {unknown}: use int, float or str")
    for label, frame in (("reference", reference), ("current", current)):
        missing = [name for name in kinds if name not in frame.columns]
        if missing:
            raise DriftError(f"the {label} sample has no column(s) {missing}")
        if len(frame) < settings.min_rows:
            raise DriftError(
                f"the {label} sample has {len(frame)} rows; drift needs at least "
                f"{settings.min_rows} in each (drift.min_rows in params.yaml)"
            )
    strangers = sorted(set(settings.features) - set(kinds))
    if strangers:
        raise DriftError(
            f"drift.features in params.yaml names {strangers}, which are not columns; "
            f"columns are {sorted(kinds)}"
        )


def _floats(column: pd.Series) -> np.ndarray:
    try:
        return column.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise DriftError(f"column {column.name!r} should be numeric: {error}") from error


def _sorted_present(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The non-missing values sorted (NaN sorts last), and how many were missing."""
    nulls = int(np.count_nonzero(np.isnan(values)))
    return np.sort(values)[: values.size - nulls], nulls


def _percent(share: float) -> str:
    return format(share, ".1%")


def _severity(result: FeatureDrift) -> float:
    value = result.statistics.get(result.decided_by)
    return (value or 0.0) / result.thresholds[result.decided_by]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"


def _result_dict(result: FeatureDrift) -> dict[str, Any]:
    data = asdict(result)
    data["statistics"] = {
        key: (None if value is None or not math.isfinite(value) else value)
        for key, value in result.statistics.items()
    }
    return data


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
