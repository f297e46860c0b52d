"""Stage ``evaluate``: holdout metrics and the plots DVC and the PR report compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.contract.validation import inputs
from {{ cookiecutter.package }}.data import class_names, labels, read_table
from {{ cookiecutter.package }}.modeling import metrics, plots
from {{ cookiecutter.package }}.modeling.model import Classifier, load_model


def score(model: Classifier, frame: pd.DataFrame) -> np.ndarray:
    """P(data.positive_class) for each labelled row of ``frame``, after checking the contract."""
    return model.predict_proba(inputs(frame))[:, 1]


def run(
    settings: Settings, model_dir: Path, test_path: Path, metrics_path: Path, plots_dir: Path
) -> dict[str, float]:
    frame = read_table(test_path)
    truth = labels(frame, settings.data)
    scores = score(load_model(model_dir), frame)
    threshold = settings.evaluate.threshold
    values = metrics.compute(truth, scores, threshold)
    metrics_path.write_text(json.dumps(values, indent=2) + "\n")
    plots.write_tables(truth, scores, threshold, plots_dir, class_names(frame, settings.data))
    plots.render_pngs(plots_dir)
    return values
