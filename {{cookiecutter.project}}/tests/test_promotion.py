"""Champion / challenger decision: properties over any metric values, and its clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from {{ cookiecutter.package }}.registry.promotion import ROUNDING, PromotionError, decide

# What the tests know independently of modeling/metrics.py: which way each metric improves.
HIGHER = {"roc_auc": True, "accuracy": True, "log_loss": False}
score = st.floats(0, 1, allow_subnormal=False)
loss = st.floats(0, 20, allow_subnormal=False)
delta = st.floats(0, 0.1, allow_subnormal=False)


def judge(challenger, champion, primary="roc_auc", min_delta=0.0, guardrails=None, floor=None):
    return decide(
        challenger,
        champion,
        primary=primary,
        min_delta=min_delta,
        guardrails=guardrails or {},
        floor=floor,
    )


@given(primary=st.sampled_from(["roc_auc", "log_loss"]), a=loss, b=loss, min_delta=delta)
def test_a_worse_or_equal_challenger_is_never_promoted(primary, a, b, min_delta) -> None:
    better, worse = (max(a, b), min(a, b)) if HIGHER[primary] else (min(a, b), max(a, b))
    assert not judge({primary: worse}, {primary: better}, primary, min_delta).promote
    tie = judge({primary: a}, {primary: a}, primary, min_delta)
    assert not tie.promote and "no improvement" in tie.reason


@given(champion=score, gain=st.floats(0.002, 0.5), min_delta=st.floats(0, 0.5))
def test_the_primary_must_improve_by_min_delta(champion, gain, min_delta) -> None:
    challenger = champion + gain
    decision = judge({"roc_auc": challenger}, {"roc_auc": champion}, min_delta=min_delta)
    if abs((challenger - champion) - min_delta) > 1e-9:  # not a rounding-level tie with min_delta
        assert decision.promote == (challenger - champion > min_delta)
    assert decision.champion_value == champion and decision.primary == "roc_auc"
    assert "min_delta" in decision.reason


@given(champion=loss, gain=st.floats(0.001, 1))
def test_lower_is_better_metrics_improve_downwards(champion, gain) -> None:
    assert judge({"log_loss": champion - gain}, {"log_loss": champion}, "log_loss").promote
    assert not judge({"log_loss": champion + gain}, {"log_loss": champion}, "log_loss").promote


@given(auc=score, before=loss, worse_by=st.floats(0, 2), tolerance=st.floats(0, 1))
def test_a_guardrail_breach_blocks_and_is_named(auc, before, worse_by, tolerance) -> None:
    challenger = {"roc_auc": auc + 0.05, "log_loss": before + worse_by}
    champion = {"roc_auc": auc, "log_loss": before}
    decision = judge(challenger, champion, guardrails={"log_loss": tolerance})
    breached = worse_by > tolerance + 1e-9
    if breached:
        assert not decision.promote and "guardrail log_loss" in decision.reason
    elif worse_by < tolerance - 1e-9:
        assert decision.promote
    [check] = [c for c in decision.checks if c.rule == "guardrail"]
    assert check.metric == "log_loss" and check.limit == tolerance


@given(value=score, floor=score)
def test_without_a_champion_the_floor_decides(value, floor) -> None:
    decision = judge({"roc_auc": value}, None, floor=floor)
    # Within judge's rounding allowance a value counts as at the floor, which reaches it; the
    # band between the two bounds below is left to floating point.
    if abs(value - floor) > 2 * ROUNDING:
        assert decision.promote == (value > floor)
    elif abs(value - floor) < ROUNDING / 2:
        assert decision.promote  # at the floor counts as reaching it
    assert "no champion" in decision.reason and decision.champion_value is None


def test_without_a_champion_or_a_floor_nothing_is_promoted() -> None:
    decision = judge({"roc_auc": 0.99}, None)
    assert not decision.promote and "no champion" in decision.reason and "floor" in decision.reason


def test_the_floor_also_binds_a_challenger_that_beats_the_champion() -> None:
    decision = judge({"roc_auc": 0.7}, {"roc_auc": 0.6}, floor=0.8)
    assert not decision.promote and "floor 0.8" in decision.reason


def test_a_clear_win_reads_well() -> None:
    decision = judge(
        {"roc_auc": 0.86, "log_loss": 0.40},
        {"roc_auc": 0.84, "log_loss": 0.41},
        min_delta=0.01,
        guardrails={"log_loss": 0.02},
        floor=0.8,
    )
    assert decision.promote
    assert decision.reason.startswith("promote: roc_auc 0.8600 is at or above the floor 0.8")
    assert "better by 0.0200 reaches min_delta 0.01" in decision.reason
    assert [c.rule for c in decision.checks] == ["floor", "improvement", "guardrail"]
    assert decision.to_dict()["checks"][1]["change"] == pytest.approx(0.02)


def test_missing_or_unknown_metrics_are_errors() -> None:
    with pytest.raises(PromotionError, match="challenger's metrics have no 'roc_auc'"):
        judge({"accuracy": 0.9}, {"roc_auc": 0.8})
    with pytest.raises(PromotionError, match="champion's metrics have no 'log_loss'"):
        judge({"roc_auc": 0.9, "log_loss": 0.3}, {"roc_auc": 0.8}, guardrails={"log_loss": 0.1})
    with pytest.raises(PromotionError, match="'brier' has no known direction"):
        judge({"brier": 0.1}, {"brier": 0.2}, primary="brier")
    with pytest.raises(PromotionError, match="NaN"):
        judge({"roc_auc": float("nan")}, {"roc_auc": 0.8})
    with pytest.raises(PromotionError, match="min_delta"):
        judge({"roc_auc": 0.9}, {"roc_auc": 0.8}, min_delta=-1)
