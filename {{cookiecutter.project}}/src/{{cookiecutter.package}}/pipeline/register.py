"""Stage ``register``: log the run to MLflow and register its model as the challenger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.registry.tracking import log_and_register


def run(
    settings: Settings, metrics_path: Path, model_dir: Path, artifacts: list[Path], record: Path
) -> dict[str, Any]:
    """Register the model in ``model_dir`` with the holdout metrics in ``metrics_path``."""
    metrics = json.loads(metrics_path.read_text())
    return log_and_register(settings, metrics, model_dir, artifacts, record)
