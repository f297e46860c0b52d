"""Stage ``explain``: permutation importance of each input column on the holdout.

Shuffling one column breaks its link to the label; how much the primary metric then worsens
says how much the model leans on that column. It works for every model family (no access to
model internals), and the PR report compares the top columns with the base branch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from {{ cookiecutter.package }}.data import read_table
from {{ cookiecutter.package }}.evaluate import HIGHER_IS_BETTER
from {{ cookiecutter.package }}.model import ChurnModel, load_model
from {{ cookiecutter.package }}.train import inputs, labels


def metric_value(metric: str, truth: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """One metric as ``evaluate.compute_metrics`` computes it (a test keeps the two equal).

    Computing only the one needed matters here: it runs columns x repeats times.
    """
    predicted = (scores >= threshold).astype(int)
    functions = {
        "accuracy": lambda: skm.accuracy_score(truth, predicted),
        "precision": lambda: skm.precision_score(truth, predicted, zero_division=0),
        "recall": lambda: skm.recall_score(truth, predicted, zero_division=0),
        "f1": lambda: skm.f1_score(truth, predicted, zero_division=0),
        "roc_auc": lambda: skm.roc_auc_score(truth, scores),
        "log_loss": lambda: skm.log_loss(truth, scores, labels=[0, 1]),
    }
    return round(float(functions[metric]()), 6)


def permutation_importance(
    model: ChurnModel,
    frame: pd.DataFrame,
    truth: np.ndarray,
    metric: str,
    threshold: float,
    repeats: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Mean and spread of the metric's worsening per shuffled column, largest first.

    ``frame`` must already keep the contract: shuffling a column only reorders valid values,
    so it is validated once here rather than on every one of the many predictions.
    """
    if repeats < 1:
        raise ValueError(f"explain.repeats must be at least 1 (got {repeats}) in params.yaml")
    if metric not in HIGHER_IS_BETTER:
        known = sorted(HIGHER_IS_BETTER)
        raise ValueError(f"evaluate.primary_metric {metric!r} is unknown; choose one of {known}")
    frame = frame.reset_index(drop=True)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    rng = np.random.default_rng(seed)
    # Every shuffled copy goes into one frame and one predict call: per-call overhead (feature
    # building, per-tree dispatch) then happens once instead of columns x repeats times.
    copies = [frame]
    for column in frame.columns:
        for _ in range(repeats):
            shuffled = frame.copy()
            # iloc + set_axis keeps the column's dtype (categories, nullable ints) intact.
            order = rng.permutation(len(frame))
            shuffled[column] = frame[column].iloc[order].set_axis(frame.index)
            copies.append(shuffled)
    scores = model.predict_proba(pd.concat(copies, ignore_index=True))[:, 1]
    blocks = scores.reshape(len(copies), len(frame))

    def value(block: np.ndarray) -> float:
        return metric_value(metric, truth, block, threshold)

    baseline = value(blocks[0])
    result = {}
    for index, column in enumerate(frame.columns):
        start = 1 + index * repeats
        drops = [sign * (baseline - value(block)) for block in blocks[start : start + repeats]]
        result[column] = {
            "mean": round(float(np.mean(drops)), 6),
            "std": round(float(np.std(drops)), 6),
        }
    return dict(sorted(result.items(), key=lambda item: item[1]["mean"], reverse=True))


def run(params: dict, model_dir: Path, test_path: Path, out_path: Path) -> dict:
    """Write ``out_path``: the metric it measured and the importance of every column."""
    frame = read_table(test_path)
    metric = params["evaluate"]["primary_metric"]
    importance = permutation_importance(
        load_model(model_dir),
        inputs(frame),
        labels(frame, params),
        metric,
        params["evaluate"]["threshold"],
        params["explain"]["repeats"],
        params["seed"],
    )
    record = {"metric": metric, "repeats": params["explain"]["repeats"], "features": importance}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(record, indent=2) + "\n")
    return record
