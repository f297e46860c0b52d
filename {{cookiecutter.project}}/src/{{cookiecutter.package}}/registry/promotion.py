"""Champion / challenger: may the challenger replace the champion? The decision only.

``decide`` is a pure function of the two models' metrics on the same holdout; moving the MLflow
alias and recording who approved it happen elsewhere, after it says yes. The rules:

- The primary metric must improve, in its own direction, by at least ``min_delta`` (a tie never
  promotes, whatever ``min_delta``), and reach the ``floor`` when one is set.
- No guardrail metric may degrade, in its own direction, by more than its tolerance.
- Without a champion (none promoted yet, or it could not be read) the decision says so and falls
  back to the floor: the challenger is promoted when its primary metric is at or beyond it. With
  neither a champion nor a floor nothing is promoted: there is nothing to judge against.
- A metric missing from either side, a NaN, or a metric without a known direction is an error
  naming it, never a silent pass.

Every direction question (better by how much, at or beyond the floor, within a tolerance) is
answered by the metric itself (``modeling/metrics.py``), looked up by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from {{ cookiecutter.package }}.modeling.metrics import ROUNDING, Metric, UnknownMetric, metric_named


class PromotionError(ValueError):
    """The metrics cannot be compared; the message names what is missing."""


@dataclass(frozen=True)
class Check:
    """One rule applied to one metric: the primary's improvement, the floor, or a guardrail."""

    rule: str  # improvement | floor | guardrail
    metric: str
    challenger: float
    champion: float | None
    change: float | None  # challenger minus champion in the metric's better direction
    limit: float  # improvement: min_delta; floor: the floor; guardrail: allowed degradation
    passed: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    primary: str
    challenger_value: float
    champion_value: float | None
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    primary: str,
    min_delta: float,
    guardrails: Mapping[str, float],
    floor: float | None,
) -> Decision:
    """Promote the challenger over the champion? See the module docstring for the rules.

    Metrics are named as in ``modeling/metrics.py``, whose table says each one's direction.
    """
    if min_delta < 0 or not math.isfinite(min_delta):
        raise PromotionError(f"promotion.min_delta must be a number >= 0, got {min_delta!r}")
    bad = {name: tol for name, tol in guardrails.items() if not (tol >= 0 and math.isfinite(tol))}
    if bad:
        raise PromotionError(f"promotion.guardrails tolerances must be numbers >= 0, got {bad}")
    metrics = [primary, *(name for name in guardrails if name != primary)]
    known: dict[str, Metric] = {}
    for name in metrics:
        known[name] = _metric(name)
        _value(challenger, name, "challenger")
        if champion is not None:
            _value(champion, name, "champion")

    value = _value(challenger, primary, "challenger")
    checks: list[Check] = []
    if floor is not None:
        checks.append(_floor(known[primary], value, floor))
    if champion is None:
        return _without_champion(primary, value, floor, checks)

    before = _value(champion, primary, "champion")
    gain = known[primary].better_by(value, before)
    improved = gain > ROUNDING and gain >= min_delta - ROUNDING
    checks.append(
        Check(
            "improvement",
            primary,
            value,
            before,
            gain,
            min_delta,
            improved,
            f"{primary} {value:.4f} vs champion {before:.4f}: {_signed(gain)} "
            + (
                f"reaches min_delta {min_delta}"
                if improved
                else f"is short of min_delta {min_delta}"
            )
            + ("" if gain > ROUNDING else " (no improvement)"),
        )
    )
    for name, tolerance in guardrails.items():
        now, then = _value(challenger, name, "challenger"), _value(champion, name, "champion")
        change = known[name].better_by(now, then)
        held = known[name].holds(then, now, tolerance)
        checks.append(
            Check(
                "guardrail",
                name,
                now,
                then,
                change,
                tolerance,
                held,
                f"guardrail {name} {now:.4f} vs champion {then:.4f}: {_signed(change)}, "
                + ("within" if held else "degrades beyond")
                + f" tolerance {tolerance}",
            )
        )
    failed = [check for check in checks if not check.passed]
    promote = not failed
    reason = (
        "promote: " + "; ".join(check.reason for check in checks)
        if promote
        else "keep the champion: " + "; ".join(check.reason for check in failed)
    )
    return Decision(promote, reason, primary, value, before, checks)


def _without_champion(
    primary: str, value: float, floor: float | None, checks: list[Check]
) -> Decision:
    if floor is None:
        reason = (
            f"keep: no champion to compare with and no floor for {primary} "
            "(set one in params.yaml, or promote a first model by hand)"
        )
        return Decision(False, reason, primary, value, None, checks)
    check = checks[0]
    verb = "promote" if check.passed else "keep"
    return Decision(
        check.passed, f"{verb}: no champion; {check.reason}", primary, value, None, checks
    )


def _floor(metric: Metric, value: float, floor: float) -> Check:
    return Check(
        "floor",
        metric.name,
        value,
        None,
        None,
        floor,
        metric.meets(value, floor),
        f"{metric.name} {value:.4f} is {metric.side(value, floor)} the floor {floor}",
    )


def _signed(change: float) -> str:
    return f"{'better' if change > 0 else 'worse' if change < 0 else 'equal'} by {abs(change):.4f}"


def _metric(name: str) -> Metric:
    try:
        return metric_named(name)
    except UnknownMetric as error:
        raise PromotionError(str(error)) from None


def _value(metrics: Mapping[str, float], name: str, side: str) -> float:
    if name not in metrics:
        raise PromotionError(
            f"the {side}'s metrics have no {name!r} (they have {sorted(metrics)}): "
            "evaluate both models on the same holdout with the same metrics"
        )
    value = float(metrics[name])
    if math.isnan(value):
        raise PromotionError(f"the {side}'s {name} is NaN: its evaluation failed")
    return value
