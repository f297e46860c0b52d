"""Stage ``train``: fit the configured model family on the validated training split."""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.data import read_table
from {{ cookiecutter.package }}.model import ChurnModel, build_model
from {{ cookiecutter.package }}.schema import ModelInput, validate


def labels(frame: pd.DataFrame, params: dict) -> np.ndarray:
    """1 for the positive class (a churned customer), 0 otherwise."""
    settings = params["data"]
    return (frame[settings["target"]] == settings["positive_class"]).to_numpy(dtype=np.int64)


def inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract's model input columns, validated (never trains on unchecked data)."""
    return validate(frame[list(ModelInput.to_schema().columns)], ModelInput)


def fit(params: dict, frame: pd.DataFrame) -> ChurnModel:
    family = params["train"]["model"]
    model = build_model(family, dict(params["train"][family]), params["seed"])
    return model.fit(inputs(frame), labels(frame, params))


def hardware() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"


def run(params: dict, train_path: Path, model_dir: Path, info_path: Path) -> ChurnModel:
    """Train and save; the new model replaces the old one only once fully written."""
    frame = read_table(train_path)
    started = time.perf_counter()
    model = fit(params, frame)
    seconds = time.perf_counter() - started
    staging = model_dir.with_name(f".{model_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    info = {
        "family": params["train"]["model"],
        "rows": len(frame),
        "seconds": round(seconds, 3),
        "hardware": hardware(),
        "python": platform.python_version(),
    }
    info_path.parent.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return model
