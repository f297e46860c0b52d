"""The quality gate: may this model replace the one it is compared with?

It compares the primary metric (params.yaml ``evaluate.primary_metric``) of a candidate with a
baseline (the base branch in a pull request). It fails when the candidate is worse by more
than ``gate.max_regression``, or beyond the metric's holdout limit (``evaluate.at_least`` /
``evaluate.at_most``) when one is set. The PR workflow runs it as a required status check; the
report puts its reason on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.modeling.metrics import METRICS


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    metric: str
    candidate: float
    baseline: float | None

    def line(self) -> str:
        return f"{'PASSED' if self.passed else 'FAILED'}: {self.reason}"


def check(
    settings: Settings, candidate: dict[str, float], baseline: dict[str, float] | None
) -> Verdict:
    """Judge ``candidate`` metrics against ``baseline`` (None: nothing to compare with yet)."""
    name = settings.evaluate.primary_metric
    metric, tolerance = METRICS[name], settings.gate.max_regression
    if name not in candidate:
        raise ValueError(f"metrics have no {name!r}: run `make repro` to write metrics.json")
    now = float(candidate[name])
    limit = settings.evaluate.limit(name)
    if limit is not None and metric.regression(limit, now) > 0:
        where = "below the floor" if metric.higher_is_better else "above the ceiling"
        reason = f"{name} {now:.4f} is {where} {limit} set in params.yaml"
        return Verdict(False, reason, name, now, None)
    if not baseline or name not in baseline:
        return Verdict(True, f"{name} {now:.4f}; no baseline to compare with", name, now, None)
    before = float(baseline[name])
    regression = metric.regression(before, now)
    if regression > tolerance:
        return Verdict(
            False,
            f"{name} regressed by {regression:.4f} ({before:.4f} -> {now:.4f}), more than "
            f"the {tolerance} allowed by gate.max_regression",
            name,
            now,
            before,
        )
    if regression > 0:
        change = f"regressed by {regression:.4f}, within the {tolerance} allowed"
    else:
        change = "improved" if regression < 0 else "unchanged"
    return Verdict(True, f"{name} {change}: {before:.4f} -> {now:.4f}", name, now, before)
