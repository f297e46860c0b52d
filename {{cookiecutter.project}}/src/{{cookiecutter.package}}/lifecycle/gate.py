"""The quality gate: may this model replace the one it is compared with?

It compares the primary metric (params.yaml ``evaluate.primary_metric``) of a candidate with a
baseline: the durable champion when one has been promoted (``champion.py``), else the base
branch's committed metrics, and says which. It fails when the candidate is worse by more
than ``gate.max_regression``, or beyond the metric's holdout limit (``evaluate.at_least`` /
``evaluate.at_most``) when one is set; the metric (``modeling/metrics.py``) judges both, as it
does for promotion. The PR workflow runs it as a required status check; the report puts its
reason on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from {{ cookiecutter.package }}.config import METRICS_FILE, Settings
from {{ cookiecutter.package }}.modeling.metrics import METRICS
from {{ cookiecutter.package }}.registry.history import resolve, show


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    metric: str
    candidate: float
    baseline: float | None

    def line(self) -> str:
        return f"{'PASSED' if self.passed else 'FAILED'}: {self.reason}"


def base_metrics(base_ref: str) -> dict[str, float] | None:
    """metrics.json as committed at ``base_ref`` (None when that commit has none yet)."""
    text = show(resolve(base_ref), METRICS_FILE)
    return json.loads(text) if text else None


def baseline(settings: Settings, base_ref: str) -> tuple[dict[str, float] | None, str]:
    """What a candidate is judged against, and that baseline's name for the verdict."""
    from {{ cookiecutter.package }}.registry.champion import current

    champion = current(settings)
    if champion is not None:
        return champion.metrics, f"the champion ({champion.where})"
    return base_metrics(base_ref), f"{base_ref} (no champion promoted yet)"


def check(
    settings: Settings,
    candidate: dict[str, float],
    baseline: dict[str, float] | None,
    against: str = "the baseline",
) -> Verdict:
    """Judge ``candidate`` metrics against ``baseline`` (None: nothing to compare with yet)."""
    name = settings.evaluate.primary_metric
    metric, tolerance = METRICS[name], settings.gate.max_regression
    if name not in candidate:
        raise ValueError(f"metrics have no {name!r}: run `make repro` to write metrics.json")
    now = float(candidate[name])
    limit = settings.evaluate.limit(name)
    if limit is not None and not metric.meets(now, limit):
        where = f"{metric.side(now, limit)} the {metric.bound}"
        reason = f"{name} {now:.4f} is {where} {limit} set in params.yaml"
        return Verdict(False, reason, name, now, None)
    if not baseline or name not in baseline:
        if limit is None:
            reason = (
                f"{name} {now:.4f}: nothing to compare with ({against} has no {name}) and no "
                f"limit for it in evaluate.at_least / at_most; set one in params.yaml"
            )
            return Verdict(False, reason, name, now, None)
        reason = f"{name} {now:.4f} within its limit {limit}; no baseline in {against}"
        return Verdict(True, reason, name, now, None)
    before = float(baseline[name])
    regression = metric.regression(before, now)
    if not metric.holds(before, now, tolerance):
        return Verdict(
            False,
            f"{name} regressed by {regression:.4f} vs {against} ({before:.4f} -> {now:.4f}), "
            f"more than the {tolerance} allowed by gate.max_regression",
            name,
            now,
            before,
        )
    if regression > 0:
        change = f"regressed by {regression:.4f}, within the {tolerance} allowed"
    else:
        change = "improved" if regression < 0 else "unchanged"
    reason = f"{name} {change} vs {against}: {before:.4f} -> {now:.4f}"
    return Verdict(True, reason, name, now, before)


def judge_file(settings: Settings, base_ref: str, metrics_file: Path = METRICS_FILE) -> Verdict:
    """``make gate``: this run's metrics.json against the champion, else ``base_ref``."""
    if not metrics_file.exists():
        raise FileNotFoundError(f"{metrics_file} not found: run `make repro` first")
    return check(settings, json.loads(metrics_file.read_text()), *baseline(settings, base_ref))
