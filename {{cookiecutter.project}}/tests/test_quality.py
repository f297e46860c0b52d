"""Model quality from labels: intervals that cover the truth as often as they say, a verdict that
ignores sampling noise and catches a real drop, windows per model version, gauges Prometheus
reads; and the prediction shift judged without labels."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package }}.config import parse_settings
from {{ cookiecutter.package }}.modeling.metrics import METRICS, compute
from {{ cookiecutter.package }}.monitoring.quality import group_metrics, markdown, quality, textfile
from {{ cookiecutter.package }}.monitoring.shift import prediction_shift

START = datetime(2026, 3, 1, tzinfo=UTC)


def population(rng: np.random.Generator, n: int, separation: float) -> tuple[np.ndarray, ...]:
    """Labels (30 % positive) and scores whose classes lie ``separation`` apart (logit scale)."""
    truth = rng.random(n) < 0.3
    logits = rng.normal(np.where(truth, separation / 2, -separation / 2) - 0.8, 1.0)
    return truth, 1 / (1 + np.exp(-logits))


def labelled(truth: np.ndarray, scores: np.ndarray, version: str = "4", hours: float = 0):
    n = len(truth)
    moment = pd.Timestamp(START + timedelta(hours=hours))
    return pd.DataFrame(
        {
            "request_id": [f"{version}-{hours}-{i}" for i in range(n)],
            "label": truth.astype("int8"),
            "observed_at": moment + pd.Timedelta(days=2),
            "timestamp": moment,
            "score": scores,
            "model_version": version,
        }
    )


def test_intervals_cover_the_true_value_as_often_as_their_level(settings) -> None:
    """200 samples of 400 labels from one population: each metric's interval (at 1 - 2 x 0.01
    = 98 %) holds the population's value in about 98 % of them; a standard error half as
    large would cover about 75 %."""
    rng = np.random.default_rng(3)
    truth, scores = population(rng, 1_000_000, 2.0)
    true = compute(truth.astype(int), scores, settings.evaluate.threshold)
    covered = dict.fromkeys(METRICS, 0)
    for _ in range(200):
        pick = rng.integers(0, truth.size, 400)
        frame = labelled(truth[pick], scores[pick])
        for name, entry in group_metrics(frame, settings.evaluate, 0.01).items():
            low, high = entry["interval"]
            covered[name] += low <= true[name] <= high
    for name, hits in covered.items():
        assert hits >= 186, (name, hits)  # 98 % of 200 is 196; binomial sd about 2


def test_a_drop_counts_only_beyond_sampling_noise(settings) -> None:
    """A model exactly at its roc_auc limit is flagged about 1 % of the time (the significance);
    one well below it nearly always; and the verdict is the bound the alert reads crossing."""
    rng = np.random.default_rng(11)
    separation = {0.8: 1.19, 0.65: 0.545}  # true AUC -> class separation: sqrt(2) ppf(AUC)
    flagged = dict.fromkeys(separation, 0)
    for auc, gap in separation.items():
        truth, scores = population(rng, 1_000_000, gap)
        assert compute(truth.astype(int), scores, 0.5, ["roc_auc"])["roc_auc"] == pytest.approx(
            auc, abs=0.005
        )
        evaluate = settings.evaluate.model_copy(update={"at_least": {"roc_auc": 0.8}})
        for _ in range(100):
            pick = rng.integers(0, truth.size, 400)
            entry = group_metrics(labelled(truth[pick], scores[pick]), evaluate, 0.01)["roc_auc"]
            flagged[auc] += entry["below_limit"]
            assert entry["below_limit"] == (entry["bound"] < 0.8)  # the alert's view agrees
    assert flagged[0.8] <= 5  # 1 % of 100 is 1
    assert flagged[0.65] >= 95  # 400 labels: 99 % power against a drop of 0.15


def test_windows_per_model_version_and_the_judged_one(settings) -> None:
    rng = np.random.default_rng(5)
    good, good_scores = population(rng, 900, 2.0)
    bad, bad_scores = population(rng, 700, 0.0)  # no better than chance
    frame = pd.concat(
        [
            labelled(good[:500], good_scores[:500], "4", hours=1),
            labelled(good[500:], good_scores[500:], "4", hours=30),  # too few to judge
            labelled(bad, bad_scores, "5", hours=26),
        ],
        ignore_index=True,
    )
    quality_settings = settings.monitoring.quality.model_copy(update={"min_labels": 450})
    # The limit is the test's own: `make adopt` sets the project's from its data.
    evaluate = settings.evaluate.model_copy(update={"at_least": {"roc_auc": 0.8}, "at_most": {}})
    record = quality(frame, evaluate, quality_settings, START + timedelta(days=3))
    windows = {(w["start"][:13], w["model_version"]): w for w in record["windows"]}
    assert set(windows) == {("2026-03-01T00", "4"), ("2026-03-02T00", "4"), ("2026-03-02T00", "5")}
    assert [w["labels"] for w in record["windows"]] == [700, 400, 500]  # newest first
    assert windows[("2026-03-01T00", "4")]["judged"] and windows[("2026-03-02T00", "5")]["judged"]
    assert not windows[("2026-03-02T00", "4")]["judged"]
    assert record["status"] == "below_limit"
    assert len(record["reasons"]) == 1 and "model v5" in record["reasons"][0]
    table = markdown(record)
    assert "🔻" in table and table.count("\n| 2026-03-") == 3
    gauges = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(textfile(record))
        for sample in family.samples
    }
    for window in (w for w in record["windows"] if w["judged"]):
        version = window["model_version"]
        for name, entry in window["metrics"].items():
            key = ("model_quality_bound", (("metric", name), ("model_version", version)))
            assert gauges[key] == pytest.approx(entry["bound"], rel=1e-5)
        labels_key = ("model_quality_labels", (("model_version", version),))
        assert gauges[labels_key] == window["labels"]


def test_no_labels_and_one_class_are_reported_not_crashed(settings) -> None:
    empty = labelled(np.array([], dtype=bool), np.array([]))
    record = quality(empty, settings.evaluate, settings.monitoring.quality)
    assert record["status"] == "no_labels" and "make feedback" in markdown(record)
    one_class = labelled(np.zeros(300, dtype=bool), np.linspace(0.01, 0.6, 300))
    entry = group_metrics(one_class, settings.evaluate, 0.01)
    assert entry["roc_auc"]["value"] is None and not entry["roc_auc"]["below_limit"]
    assert math.isfinite(entry["accuracy"]["value"])


@pytest.mark.parametrize("sizes", [(500, 500), (5000, 500)])
def test_prediction_shift_ignores_noise_and_sees_a_real_move(settings, sizes) -> None:
    rng = np.random.default_rng(17)
    threshold, drift = settings.evaluate.threshold, settings.drift
    false_alarms = 0
    for _ in range(100):
        same = prediction_shift(
            rng.beta(2, 5, sizes[0]), rng.beta(2, 5, sizes[1]), threshold, drift
        )
        false_alarms += any(signal.shifted for signal in same)
    assert false_alarms <= 3  # each test at drift.chi2_pvalue (1 %), and PSI must cross too
    moved = prediction_shift(rng.beta(2, 5, sizes[0]), rng.beta(5, 2, sizes[1]), threshold, drift)
    assert [signal.shifted for signal in moved] == [True, True]
    positive = moved[0]
    assert positive.name == "positive share" and positive.current > positive.reference


def test_params_without_limits_judge_nothing(settings) -> None:
    raw = settings.model_dump()
    raw["evaluate"]["at_least"] = {}
    unlimited = parse_settings(raw)
    rng = np.random.default_rng(2)
    truth, scores = population(rng, 600, 0.0)
    record = quality(labelled(truth, scores), unlimited.evaluate, unlimited.monitoring.quality)
    assert record["status"] == "ok" and record["limits"] == {}
