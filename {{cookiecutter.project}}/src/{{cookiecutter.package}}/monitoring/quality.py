"""Model quality over time, from the labels `feedback` joined to their predictions.

Predictions are grouped by window of prediction time (``quality.window_hours``, aligned to UTC
midnight) and model version; each group gets the metrics table of modeling/metrics.py, its
count of labels and, for each metric, a confidence interval at level ``1 - 2 *
quality.significance``:

- accuracy, precision, recall: Wilson's score interval of a proportion (of all labels, of the
  predicted positives, of the actual positives);
- f1: the delta method for a ratio of sums (F1 = 2 TP / (2 TP + FP + FN));
- roc_auc: Hanley and McNeil's standard error (from the AUC and the class counts);
- log_loss: the standard error of the mean of the per-record losses.

The latest window of each model version with at least ``quality.min_labels`` labels is judged:
a metric with a limit in params.yaml ``evaluate`` is below it when its value is worse AND the
one-sided test gives a p-value below ``quality.significance`` (the canary's rule: beyond the
limit, and not the noise of a small sample). The interval's better end, ``bound``, is exactly
the value at which that test starts to reject, so the gauge ``model_quality_bound`` crossing the
limit is the same verdict the alert ModelQualityBelowLimit reads.

Written to ``reports/quality.json``, ``reports/quality.md`` (the job summary's table) and
``reports/quality.prom`` (gauges for Prometheus' textfile collector).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.config import (
    QUALITY_MARKDOWN,
    QUALITY_REPORT,
    QUALITY_TEXTFILE,
    EvaluateSettings,
    QualitySettings,
    Settings,
)
from {{ cookiecutter.package }}.modeling.metrics import METRICS, Metric, compute
from {{ cookiecutter.package }}.monitoring.feedback import LABEL, OBSERVED, read_labelled, store
from {{ cookiecutter.package }}.serving.sink import SCORE, TIMESTAMP, VERSION

Interval = tuple[float, float, float]  # (low, high, standard error of the test at the limit)


def _norm() -> Any:
    from scipy.stats import norm  # ~0.3 s: only when quality is computed

    return norm


# --- intervals --------------------------------------------------------------------------------


def wilson(successes: float, n: float, z: float) -> tuple[float, float] | None:
    """Wilson's score interval of a proportion (None without observations)."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _proportion(hits: np.ndarray, among: np.ndarray) -> Callable[[float, float, float], Any]:
    """Interval and test of a proportion: ``hits`` among the records where ``among`` holds."""
    k, n = float(hits[among].sum()), float(among.sum())

    def interval(value: float, limit: float, z: float) -> Interval | None:
        bounds = wilson(k, n, z)
        if bounds is None or not 0 < limit < 1:
            return None
        return *bounds, math.sqrt(limit * (1 - limit) / n)  # the score test's SE at the limit

    return interval


def _wald(value: float, se: float, z: float) -> Interval | None:
    if not math.isfinite(se) or se <= 0:
        return None
    return value - z * se, value + z * se, se


def intervals(truth: np.ndarray, scores: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Metric name -> (value, limit, z) -> (low, high, se) for these records."""
    tp, fp, fn = truth & predicted, ~truth & predicted, truth & ~predicted
    n1, n0 = int(truth.sum()), int((~truth).sum())

    def f1(value: float, limit: float, z: float) -> Interval | None:
        a, b = 2.0 * tp, 2.0 * tp + fp + fn
        if b.sum() == 0:
            return None
        se = math.sqrt(float(((a - value * b) ** 2).sum())) / float(b.sum())
        return _wald(value, se, z)

    def roc_auc(value: float, limit: float, z: float) -> Interval | None:
        if not n1 or not n0:
            return None
        q1, q2 = value / (2 - value), 2 * value * value / (1 + value)
        variance = value * (1 - value) + (n1 - 1) * (q1 - value**2) + (n0 - 1) * (q2 - value**2)
        return _wald(value, math.sqrt(max(variance, 0.0) / (n1 * n0)), z)

    def log_loss(value: float, limit: float, z: float) -> Interval | None:
        p = np.clip(scores, np.finfo("float64").eps, 1 - np.finfo("float64").eps)
        losses = -np.where(truth, np.log(p), np.log1p(-p))
        return _wald(value, float(losses.std()) / math.sqrt(losses.size), z)

    everyone = np.ones_like(truth)
    return {
        "accuracy": _proportion(truth == predicted, everyone),
        "precision": _proportion(truth, predicted),
        "recall": _proportion(predicted, truth),
        "f1": f1,
        "roc_auc": roc_auc,
        "log_loss": log_loss,
    }


def _better_end(metric: Metric, value: float, low: float, high: float) -> float:
    """The end of the interval on the metric's better side (regression says which)."""
    return min((low, high), key=lambda end: metric.regression(value, end))


# --- one group of labelled predictions ----------------------------------------------------------


def group_metrics(
    group: pd.DataFrame, evaluate: EvaluateSettings, significance: float
) -> dict[str, dict[str, Any]]:
    """Each metric of one window and version: value, interval, limit, p-value, verdict."""
    truth = group[LABEL].to_numpy(dtype=bool)
    scores = group[SCORE].to_numpy(dtype="float64")
    predicted = scores >= evaluate.threshold
    z = float(_norm().isf(significance))
    tests = intervals(truth, scores, predicted)
    found: dict[str, dict[str, Any]] = {}
    for name, metric in METRICS.items():
        with warnings.catch_warnings():  # roc_auc of one class is undefined: None, not a warning
            warnings.simplefilter("ignore")
            try:
                value: float | None = compute(
                    truth.astype(int), scores, evaluate.threshold, [name]
                )[name]
            except ValueError:
                value = None
        value = value if value is not None and math.isfinite(value) else None
        limit = evaluate.limit(name)
        entry: dict[str, Any] = {"value": value, "interval": None, "bound": None, "limit": limit}
        entry |= {"p_value": None, "below_limit": False}
        if value is not None:
            test = tests[name](value, limit if limit is not None else 0.5, z)
            if test is not None:
                low, high, se = test
                entry["interval"] = [round(low, 6), round(high, 6)]
                entry["bound"] = round(_better_end(metric, value, low, high), 6)
                if limit is not None:
                    worse = metric.regression(limit, value)  # > 0: worse than the limit
                    p = float(_norm().sf(worse / se))
                    entry["p_value"] = float(f"{p:.4g}")
                    entry["below_limit"] = worse > 0 and p < significance
        found[name] = entry
    return found


# --- the report -------------------------------------------------------------------------------


def quality(
    labelled: pd.DataFrame,
    evaluate: EvaluateSettings,
    settings: QualitySettings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """reports/quality.json from the store's labelled predictions."""
    now = now or datetime.now(UTC)
    record: dict[str, Any] = {
        "generated_at": now.isoformat(),
        "labels": len(labelled),
        "window_hours": settings.window_hours,
        "min_labels": settings.min_labels,
        "significance": settings.significance,
        "limits": {name: evaluate.limit(name) for name in METRICS if evaluate.limit(name)},
        "windows": [],
    }
    if labelled.empty:
        return record | {"status": "no_labels", "reasons": []}
    width = pd.Timedelta(hours=settings.window_hours)
    delay = pd.Timedelta(hours=settings.label_delay_hours)
    epoch = pd.Timestamp(0, tz="UTC")
    starts = epoch + ((labelled[TIMESTAMP] - epoch) // width) * width
    recent = sorted(starts.unique())[-settings.windows :]
    judged: dict[str, pd.Timestamp] = {}
    grouped = labelled[starts.isin(recent)].groupby([starts, labelled[VERSION].astype(str)])
    for (start, version), group in grouped:
        enough = len(group) >= settings.min_labels
        if enough and (version not in judged or start > judged[version]):
            judged[version] = start
        record["windows"].append(
            {
                "start": start.isoformat(),
                "end": (start + width).isoformat(),
                "model_version": version,
                "labels": len(group),
                "positives": int(group[LABEL].sum()),
                "late_labels": int(((group[OBSERVED] - group[TIMESTAMP]) > delay).sum()),
                "judged": False,
                "metrics": group_metrics(group, evaluate, settings.significance),
            }
        )
    reasons = []
    for window in record["windows"]:
        start = pd.Timestamp(window["start"])
        if judged.get(window["model_version"]) == start:
            window["judged"] = True
            reasons += [_reason(name, entry, window) for name, entry in window["metrics"].items()]
    reasons = [reason for reason in reasons if reason]
    record["windows"].sort(key=lambda w: (w["start"], w["model_version"]), reverse=True)
    status = "below_limit" if reasons else ("ok" if judged else "too_few_labels")
    return record | {"status": status, "reasons": reasons}


def _reason(name: str, entry: dict[str, Any], window: dict[str, Any]) -> str | None:
    if not entry["below_limit"]:
        return None
    return (
        f"{name} {entry['value']:.3f} worse than its limit {entry['limit']:g} for model "
        f"v{window['model_version']} ({window['labels']} labels, window from "
        f"{window['start'][:16]}Z, one-sided p={entry['p_value']:.2g})"
    )


def markdown(record: dict[str, Any]) -> str:
    """The "Model quality" section: one row per window and version, newest first."""
    lines = ["## Model quality", ""]
    if record["status"] == "no_labels":
        return "\n".join([*lines, "No labels yet: run `make feedback LABELS=<file>`.", ""])
    headline = {
        "ok": "Every judged metric holds its limit.",
        "below_limit": "**Below its limit beyond sampling noise:** " + "; ".join(record["reasons"]),
        "too_few_labels": f"No window has {record['min_labels']} labels yet: shown, not judged.",
    }[record["status"]]
    names = list(METRICS)
    level = 1 - 2 * record["significance"]
    lines += [
        f"{headline} {record['labels']:,} labelled predictions; intervals at {100 * level:.0f} %.",
        "",
        "| window (UTC) | model | labels | " + " | ".join(names) + " |",
        "|---|---|--:|" + "--:|" * len(names),
        "| limit | | | " + " | ".join(_limit(record["limits"].get(n)) for n in names) + " |",
    ]
    for window in record["windows"]:
        cells = [_cell(window["metrics"][name]) for name in names]
        mark = " ★" if window["judged"] else ""
        lines.append(
            f"| {window['start'][:16].replace('T', ' ')}{mark} | {window['model_version']} "
            f"| {window['labels']:,} | " + " | ".join(cells) + " |"
        )
    lines += ["", "★ the window judged for that model version; 🔻 below its limit, not noise.", ""]
    return "\n".join(lines)


def _limit(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _cell(entry: dict[str, Any]) -> str:
    if entry["value"] is None:
        return "-"
    interval = entry["interval"]
    text = f"{entry['value']:.3f}"
    if interval:
        text += f" ({interval[0]:.3f} to {interval[1]:.3f})"
    return f"🔻 {text}" if entry["below_limit"] else text


def prom_labels(**labels: str) -> str:
    """A Prometheus label set, ``{name="value",...}``, values escaped as the text format says."""
    escaped = {
        name: value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        for name, value in labels.items()
    }
    return "{" + ",".join(f'{name}="{value}"' for name, value in escaped.items()) + "}"


def textfile(record: dict[str, Any]) -> str:
    """Gauges of the judged windows for Prometheus' textfile collector."""
    value, bound, labels = [], [], []
    for window in (window for window in record["windows"] if window["judged"]):
        version = window["model_version"]
        count = window["labels"]
        labels.append(f"model_quality_labels{prom_labels(model_version=version)} {count}")
        for name, entry in window["metrics"].items():
            selector = prom_labels(metric=name, model_version=version)
            if entry["value"] is not None:
                value.append(f"model_quality{selector} {entry['value']:.6g}")
            if entry["bound"] is not None:
                bound.append(f"model_quality_bound{selector} {entry['bound']:.6g}")
    gauges = [
        ("model_quality", "Metric of labelled predictions, latest judged window per model", value),
        (
            "model_quality_bound",
            "Best value the metric may still have (one-sided confidence bound at "
            "monitoring.quality.significance): ModelQualityBelowLimit compares it with the limit",
            bound,
        ),
        ("model_quality_labels", "Labelled predictions in that window", labels),
        (
            "model_quality_last_run_timestamp_seconds",
            "When model quality was last computed",
            [f"model_quality_last_run_timestamp_seconds {time.time():.0f}"],
        ),
    ]
    return gauge_text(gauges)


def gauge_text(gauges: list[tuple[str, str, list[str]]]) -> str:
    """(name, help, samples) of each gauge in Prometheus' text format."""
    lines = []
    for name, help_text, samples in gauges:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]
    return "\n".join(lines) + "\n"


def atomic(path: Path, text: str) -> None:
    """Write ``text`` aside and rename it into place: a reader (Prometheus' textfile collector,
    a dashboard) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def write(record: dict[str, Any], paths: tuple[Path, Path, Path | None]) -> None:
    """The JSON record, its markdown and its gauges (``paths``, in that order; no gauges: None)."""
    report, summary, gauges = paths
    atomic(report, json.dumps(record, indent=2, default=str) + "\n")
    atomic(summary, markdown(record))
    if gauges is not None:
        atomic(gauges, textfile(record))


PATHS = (QUALITY_REPORT, QUALITY_MARKDOWN, QUALITY_TEXTFILE)


def refresh(
    settings: Settings, paths: tuple[Path, Path, Path | None] = PATHS, now: datetime | None = None
) -> dict[str, Any]:
    """Quality from everything in the labels store, written to ``paths``."""
    labelled = read_labelled(store(settings.monitoring))
    record = quality(labelled, settings.evaluate, settings.monitoring.quality, now)
    write(record, paths)
    return record


def summary(record: dict[str, Any], report: Path = QUALITY_REPORT) -> str:
    """One line: the verdict and where the table is."""
    judged = sum(window["judged"] for window in record["windows"])
    verdict = {
        "no_labels": "no labels yet",
        "too_few_labels": f"no window has {record['min_labels']} labels yet",
        "ok": f"{judged} judged window(s) hold every limit",
        "below_limit": "below limit: " + "; ".join(record["reasons"]),
    }[record["status"]]
    return f"model quality: {verdict} ({record['labels']} labels) -> {report}"
