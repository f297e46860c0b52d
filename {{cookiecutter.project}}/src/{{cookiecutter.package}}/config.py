"""Read params.yaml and name the files the pipeline passes between stages.

Every stage reads its settings from here, so params.yaml stays the one place to change them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")

# Files passed between DVC stages; dvc.yaml lists the same paths.
ANONYMISED = Path("data/interim/anonymised.parquet")
TRAIN_SPLIT = Path("data/processed/train.parquet")
TEST_SPLIT = Path("data/processed/test.parquet")
VALIDATION_REPORT = Path("reports/validation.json")
MODEL_DIR = Path("models/model")
METRICS = Path("metrics.json")
PLOTS_DIR = Path("reports/plots")
PREDICTIONS = Path("reports/predictions.parquet")
TRAINING_INFO = Path("reports/training.json")
REGISTRY_RECORD = Path("reports/registry.json")
IMPORTANCE = Path("reports/importance.json")
# The PR model report (`make report`) and the PNG plots it links, now and at the base ref.
REPORT = Path("report.md")
REPORT_ASSETS = Path("reports/report")


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """All pipeline parameters; raises a clear error when the file is missing."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run commands from the project root, where params.yaml lives."
        )
    with path.open() as handle:
        return yaml.safe_load(handle)
