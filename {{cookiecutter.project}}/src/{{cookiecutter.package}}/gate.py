"""The quality gate: may this model replace the one it is compared with?

It compares the primary metric (params.yaml ``evaluate.primary_metric``) of a candidate with a
baseline (the base branch in a pull request). It fails when the candidate is worse by more
than ``gate.max_regression``, or below the metric's floor ``evaluate.min_<metric>`` when one
is set. The PR workflow runs it as a required status check; the report puts its reason on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from {{ cookiecutter.package }}.evaluate import HIGHER_IS_BETTER


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    metric: str
    candidate: float
    baseline: float | None

    def line(self) -> str:
        return f"{'PASSED' if self.passed else 'FAILED'}: {self.reason}"


def settings(params: dict) -> tuple[str, float, float | None]:
    """Primary metric, allowed regression and floor, with a clear error when misconfigured."""
    metric = params["evaluate"]["primary_metric"]
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(
            f"evaluate.primary_metric {metric!r} is unknown; "
            f"choose one of {sorted(HIGHER_IS_BETTER)} in params.yaml"
        )
    tolerance = params.get("gate", {}).get("max_regression")
    if not isinstance(tolerance, int | float) or tolerance < 0:
        raise ValueError(
            f"gate.max_regression must be a number >= 0 in params.yaml (got {tolerance!r}), "
            "e.g. `gate: {max_regression: 0.01}`"
        )
    floor = params["evaluate"].get(f"min_{metric}")
    return metric, float(tolerance), floor


def check(params: dict, candidate: dict[str, float], baseline: dict[str, float] | None) -> Verdict:
    """Judge ``candidate`` metrics against ``baseline`` (None: nothing to compare with yet)."""
    metric, tolerance, floor = settings(params)
    if metric not in candidate:
        raise ValueError(f"metrics have no {metric!r}: run `make repro` to write metrics.json")
    now = float(candidate[metric])
    higher = HIGHER_IS_BETTER[metric]
    if floor is not None and (now < floor if higher else now > floor):
        limit = "below the floor" if higher else "above the ceiling"
        reason = f"{metric} {now:.4f} is {limit} {floor} set in params.yaml"
        return Verdict(False, reason, metric, now, None)
    if not baseline or metric not in baseline:
        return Verdict(True, f"{metric} {now:.4f}; no baseline to compare with", metric, now, None)
    before = float(baseline[metric])
    # Positive when the candidate is worse, whichever direction the metric improves in.
    regression = (before - now) if higher else (now - before)
    if regression > tolerance:
        return Verdict(
            False,
            f"{metric} regressed by {regression:.4f} ({before:.4f} -> {now:.4f}), more than "
            f"the {tolerance} allowed by gate.max_regression",
            metric,
            now,
            before,
        )
    if regression > 0:
        change = f"regressed by {regression:.4f}, within the {tolerance} allowed"
    else:
        change = "improved" if regression < 0 else "unchanged"
    return Verdict(True, f"{metric} {change}: {before:.4f} -> {now:.4f}", metric, now, before)
