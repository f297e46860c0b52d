"""MLflow: one run per training, with lineage, and a registered version per run.

Tracking defaults to {% if cookiecutter.mlflow_tracking == 'local' %}``sqlite:///mlflow.db`` in the project (no server){% else %}the server at ``http://127.0.0.1:5000`` (``make mlflow-server``){% endif %};
``MLFLOW_TRACKING_URI`` overrides it, which is how CI points at a shared server.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_TRACKING_URI = "{% if cookiecutter.mlflow_tracking == 'local' %}sqlite:///mlflow.db{% else %}http://127.0.0.1:5000{% endif %}"
RUNTIME_PACKAGES = ["scikit-learn", "pandas", "pandera", "numpy", "joblib"{% if cookiecutter.model == 'torch' %}, "torch"{% endif %}]


def pins(packages: list[str]) -> list[str]:
    """``name==version`` of what is installed here, for the registry and the bento.

    Local tags such as ``+cpu`` are dropped: PyPI has no ``torch==2.13.0+cpu``, and the plain
    version installs the right build on each platform.
    """
    lines = []
    for name in packages:
        try:
            lines.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            raise ValueError(
                f"{name} is not installed here, so its version cannot be pinned: run `make setup`"
            ) from None
    return lines


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def client() -> MlflowClient:
    """A client of the tracking store; mlflow is imported here, not at module load (~2 s)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.MlflowClient()


def file_md5(path: Path) -> str:
    """The hash DVC records for a single file, so a run can be traced to its data version."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> tuple[str, bool]:
    """Current commit and whether the work tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return "none", True
    return commit, dirty


def lineage_tags(raw_data: Path) -> dict[str, str]:
    commit, dirty = git_commit()
    return {
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "dvc_data_md5": file_md5(raw_data),
        "data_path": str(raw_data),
    }


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def log_training_curves(history: Path) -> None:
    """Per-epoch losses, when the model family records them (torch), as MLflow step metrics."""
    import mlflow

    if not history.exists():
        return
    curves = json.loads(history.read_text())
    for name in ("train_loss", "val_loss"):
        for step, value in enumerate(curves.get(name, [])):
            mlflow.log_metric(f"epoch_{name}", float(value), step=step)


class PyfuncModel:
    """Registry entry point: the saved model directory travels as an artifact."""

    def load_context(self, context) -> None:
        from {{ cookiecutter.package }}.model import load_model

        self.model = load_model(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict_proba(model_input)[:, 1]


def _pyfunc_model() -> Any:
    import mlflow.pyfunc

    # Subclass at call time so importing this module does not import mlflow.
    return type("ChurnPyfunc", (PyfuncModel, mlflow.pyfunc.PythonModel), {})()


def log_and_register(
    params: dict, metrics: dict[str, float], model_dir: Path, artifacts: list[Path], record: Path
) -> dict[str, Any]:
    """Log the run, register its model and point the alias from params.yaml at it."""
    import mlflow

    store = client()
    settings = params["registry"]
    mlflow.set_experiment(settings["experiment"])
    with mlflow.start_run() as run:
        mlflow.log_params(
            flatten({key: params[key] for key in ("seed", "data", "train", "evaluate")})
        )
        mlflow.log_metrics(metrics)
        mlflow.set_tags(lineage_tags(Path(params["data"]["raw"])))
        log_training_curves(model_dir / "history.json")
        for path in artifacts:
            if path.is_dir():
                mlflow.log_artifacts(str(path), path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_pyfunc_model(),
            artifacts={"model": str(model_dir)},
            pip_requirements=pins(RUNTIME_PACKAGES),
            registered_model_name=settings["model_name"],
        )
    model_version = str(info.registered_model_version)
    store.set_registered_model_alias(settings["model_name"], settings["alias"], model_version)
    result = {
        "run_id": run.info.run_id,
        "model_name": settings["model_name"],
        "version": model_version,
        "alias": settings["alias"],
        "tracking_uri": tracking_uri(),
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(result, indent=2) + "\n")
    return result


def version_for_alias(model_name: str, alias: str) -> str | None:
    """Registered version behind an alias, or None when the alias is not set."""
    import mlflow.exceptions

    try:
        return str(client().get_model_version_by_alias(model_name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None
