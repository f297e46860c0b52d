"""One traffic step of a local canary: what it saw, and whether that breaches a limit.

A step passes after ``interval_seconds`` when the canary served at least ``min_requests``
requests in it and:

- its 5xx share in the step is at most ``max_error_rate``;
- its p95 latency in the step is at most ``max_p95_ratio`` times the stable server's, or
  a binomial test finds its share of requests above that mark within noise (the
  stable server's step p95, or its whole-rollout p95 when it got too few requests, as at 100 %);
- the PSI between the two servers' prediction-score histograms since the rollout began is at
  most ``max_score_psi``, or the difference is within sampling noise (chi-square p-value at
  least ``local.significance``): the ML signal, which a model answering 200 with shifted
  scores fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from {{ cookiecutter.package }}.config import CanarySettings
from {{ cookiecutter.package }}.monitoring.stats import significant
from {{ cookiecutter.package }}.rollout.analysis import Snapshot, psi, shift_p_value, tail_p_value


@dataclass
class Step:
    """One traffic step: what was seen and what was decided."""

    weight: int
    seconds: float = 0.0
    canary_requests: int = 0
    canary_errors: int = 0
    error_rate: float = 0.0
    stable_requests: int = 0
    canary_p95_ms: float | None = None
    stable_p95_ms: float | None = None
    p95_ratio: float | None = None
    psi: float | None = None
    psi_p_value: float | None = None
    p95_p_value: float | None = None
    weights_seconds: float = 0.0
    verdict: str = "running"  # pass | rollback
    reason: str = ""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def measure(
    step: Step,
    canary: Snapshot,
    stable: tuple[Snapshot, Snapshot, Snapshot],
    canary_rollout: Snapshot,
    settings: CanarySettings,
) -> None:
    """Fill ``step`` from the canary's step and rollout deltas and the stable server's
    (step, rollout, lifetime) counts.

    The stable reference is the narrowest window with at least ``enough`` requests: the same
    step (same load, same moment), else the rollout so far (at 100 % the stable gets nothing),
    else everything it served since it started (a blue-green switch has no earlier step).
    """
    step.canary_requests, step.canary_errors = canary.requests, canary.errors
    step.error_rate = round(canary.error_rate, 4)
    step.stable_requests = stable[0].requests
    enough = settings.min_requests
    reference = next((window for window in stable if window.requests >= enough), stable[-1])
    canary_p95, stable_p95 = canary.p95, reference.p95
    step.canary_p95_ms, step.stable_p95_ms = _ms(canary_p95), _ms(stable_p95)
    step.p95_ratio = (
        round(canary_p95 / stable_p95, 3) if canary_p95 is not None and stable_p95 else None
    )
    if stable_p95:
        tail = tail_p_value(canary.latency, settings.max_p95_ratio * stable_p95)
        step.p95_p_value = None if tail is None else float(f"{tail:.3g}")
    scores = next((window for window in stable[1:] if window.requests >= enough), stable[-1])
    shift = psi(scores.scores, canary_rollout.scores)
    step.psi = None if shift is None else round(shift, 4)
    p_value = shift_p_value(scores.scores, canary_rollout.scores)
    step.psi_p_value = None if p_value is None else float(f"{p_value:.3g}")


def breach(step: Step, settings: CanarySettings) -> str | None:
    """Why the step fails, or None while it holds."""
    if step.error_rate > settings.max_error_rate:
        return (
            f"error rate {step.error_rate * 100:.1f}% "
            f"({step.canary_errors}/{step.canary_requests}) "
            f"> max_error_rate {settings.max_error_rate * 100:.1f}%"
        )
    significance = settings.local.significance
    if significant(step.p95_ratio, settings.max_p95_ratio, step.p95_p_value, significance):
        return (
            f"p95 {step.canary_p95_ms} ms is {step.p95_ratio}x stable's {step.stable_p95_ms} ms "
            f"> max_p95_ratio {settings.max_p95_ratio} (binomial p={step.p95_p_value} "
            f"< {significance}: not noise)"
        )
    if significant(step.psi, settings.max_score_psi, step.psi_p_value, significance):
        return (
            f"prediction-score PSI {step.psi} > max_score_psi {settings.max_score_psi} "
            f"(chi-square p={step.psi_p_value} < {significance}: not noise)"
        )
    return None


def step_line(step: Step, number: int, total: int) -> str:
    """One progress line per step, as the rollout goes."""
    return (
        f"step {number}/{total}  canary {step.weight:>3}%  {step.seconds:5.1f}s  "
        f"requests {step.canary_requests:>5}  errors {step.error_rate * 100:5.1f}%  "
        f"p95 {step.canary_p95_ms} ms (x{step.p95_ratio})  PSI {step.psi}  "
        f"{step.verdict.upper()}: {step.reason}"
    )
