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

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.contract.validation import inputs
from {{ cookiecutter.package }}.data import labels, read_table
from {{ cookiecutter.package }}.modeling.metrics import METRICS, compute
from {{ cookiecutter.package }}.modeling.model import Classifier, load_model


def permutation_importance(
    model: Classifier,
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
    frame = frame.reset_index(drop=True)
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
        # Only the one metric: this runs columns x repeats times.
        return compute(truth, block, threshold, [metric])[metric]

    baseline = value(blocks[0])
    result = {}
    for index, column in enumerate(frame.columns):
        start = 1 + index * repeats
        blocks_of_column = blocks[start : start + repeats]
        drops = [METRICS[metric].regression(baseline, value(block)) for block in blocks_of_column]
        result[column] = {
            "mean": round(float(np.mean(drops)), 6),
            "std": round(float(np.std(drops)), 6),
        }
    return dict(sorted(result.items(), key=lambda item: item[1]["mean"], reverse=True))


def run(settings: Settings, model_dir: Path, test_path: Path, out_path: Path) -> dict:
    """Write ``out_path``: the metric it measured and the importance of every column."""
    frame = read_table(test_path)
    metric, repeats = settings.evaluate.primary_metric, settings.explain.repeats
    importance = permutation_importance(
        load_model(model_dir),
        inputs(frame),
        labels(frame, settings.data),
        metric,
        settings.evaluate.threshold,
        repeats,
        settings.seed,
    )
    record = {"metric": metric, "repeats": repeats, "features": importance}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(record, indent=2) + "\n")
    return record
