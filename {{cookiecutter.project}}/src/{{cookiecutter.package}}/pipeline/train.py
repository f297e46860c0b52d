"""Stage ``train``: fit the configured model family on the validated training split."""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

import pandas as pd

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.contract.validation import inputs
from {{ cookiecutter.package }}.data import labels, read_table
from {{ cookiecutter.package }}.modeling.model import Classifier, build_model


def fit(settings: Settings, frame: pd.DataFrame) -> Classifier:
    """A model of the family in params.yaml, fitted on labelled rows of ``frame``."""
    train = settings.train
    model = build_model(train.model, train.family_params(), settings.seed)
    return model.fit(inputs(frame), labels(frame, settings.data))


def hardware() -> str:
{%- if cookiecutter.model == 'torch' %}
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
{%- endif %}
    return f"CPU: {platform.processor() or platform.machine()}"


def run(settings: Settings, train_path: Path, model_dir: Path, info_path: Path) -> Classifier:
    """Train and save; the new model replaces the old one only once fully written."""
    frame = read_table(train_path)
    started = time.perf_counter()
    model = fit(settings, frame)
    seconds = time.perf_counter() - started
    staging = model_dir.with_name(f".{model_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    info = {
        "family": settings.train.model,
        "rows": len(frame),
        "seconds": round(seconds, 3),
        "hardware": hardware(),
        "python": platform.python_version(),
    }
    # Families that report how they trained (torch: device, precision, captured or eager and why).
    record = getattr(model, "training_record", None)
    info.update(record() if record else {})
    info_path.parent.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return model
