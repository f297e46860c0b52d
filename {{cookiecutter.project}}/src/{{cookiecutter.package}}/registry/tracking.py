"""MLflow: one run per training, with lineage, a registered version per run, and aliases.

The tracking store is ``registry.tracking_uri`` in params.yaml; the environment variable
``MLFLOW_TRACKING_URI`` overrides it, which is how CI points at a shared server.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.config import RegistrySettings, Settings, flatten
from {{ cookiecutter.package }}.modeling.meta import HISTORY_FILE, META_FILE
from {{ cookiecutter.package }}.registry.history import head

if TYPE_CHECKING:
    from mlflow import MlflowClient


class ModelNotFound(FileNotFoundError):
    """No model where a choice points; the message says how to get one."""


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


def tracking_uri(settings: RegistrySettings) -> str:
    # An unset repository variable reaches a workflow step as an empty string: that is unset,
    # never a tracking URI (MLflow would read "" as a relative ./mlruns store).
    return os.environ.get("MLFLOW_TRACKING_URI") or settings.tracking_uri


def reachable(settings: RegistrySettings) -> str:
    """The tracking store, checked before a run needs it: a server that does not answer its
    /health stops `make repro` before the first stage (not minutes later, at `register`)."""
    uri = tracking_uri(settings)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        source = "the environment variable MLFLOW_TRACKING_URI"
    else:
        source = "params.yaml registry.tracking_uri"
    if not uri.startswith(("http://", "https://")):
        return f"MLflow store {uri} (from {source})"
    import httpx

    try:
        answer = httpx.get(f"{uri.rstrip('/')}/health", timeout=5).status_code
    except httpx.HTTPError as error:
        answer = type(error).__name__
    if answer != 200:
        raise ValueError(
            f"the MLflow tracking server {uri} (from {source}) does not answer ({answer}): start "
            "it (`make mlflow-server` runs one locally) or point MLFLOW_TRACKING_URI at yours"
        )
    return f"MLflow server {uri} (from {source}) answers"


def client(settings: RegistrySettings) -> MlflowClient:
    """A client of the tracking store; mlflow is imported here, not at module load (~2 s)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(settings))
    return mlflow.MlflowClient()


def file_md5(path: Path) -> str:
    """The hash DVC records for a single file, so a run can be traced to its data version."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lineage_tags(raw_data: Path) -> dict[str, str]:
    commit, dirty = head()
    return {
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "dvc_data_md5": file_md5(raw_data),
        "data_path": str(raw_data),
    }


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
        from {{ cookiecutter.package }}.modeling.model import load_model

        self.model = load_model(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict_proba(model_input)[:, 1]


def _pyfunc_model() -> Any:
    import mlflow.pyfunc

    # Subclass at call time so importing this module does not import mlflow.
    return type("ModelPyfunc", (PyfuncModel, mlflow.pyfunc.PythonModel), {})()


def log_and_register(
    settings: Settings,
    metrics: dict[str, float],
    model_dir: Path,
    artifacts: list[Path],
    record: Path,
) -> dict[str, Any]:
    """Log the run, register its model and point the alias from params.yaml at it."""
    import mlflow

    registry = settings.registry
    store = client(registry)
    mlflow.set_experiment(registry.experiment)
    logged = settings.model_dump(include={"seed", "data", "train", "evaluate"})
    with mlflow.start_run() as run:
        mlflow.log_params({key: str(value) for key, value in flatten(logged).items()})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(lineage_tags(Path(settings.data.raw)))
        log_training_curves(model_dir / HISTORY_FILE)
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
            registered_model_name=registry.model_name,
        )
    model_version = str(info.registered_model_version)
    store.set_registered_model_alias(registry.model_name, registry.alias, model_version)
    result = {
        "run_id": run.info.run_id,
        "model_name": registry.model_name,
        "version": model_version,
        "alias": registry.alias,
        "tracking_uri": tracking_uri(registry),
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(result, indent=2) + "\n")
    return result


def version_for_alias(settings: RegistrySettings, alias: str) -> str | None:
    """Registered version behind an alias, or None when the alias is not set."""
    import mlflow.exceptions

    try:
        return str(client(settings).get_model_version_by_alias(settings.model_name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def download(settings: RegistrySettings, version: str, target: Path) -> str:
    """Copy registered ``version``'s saved model directory to ``target``; return its run id."""
    import shutil
    import tempfile

    import mlflow

    name = settings.model_name
    run_id = client(settings).get_model_version(name, version).run_id or ""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(
            mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=scratch)
        )
        # The pyfunc wrapper keeps our saved directory as its "model" artifact.
        found = [path.parent for path in root.rglob(META_FILE)]
        if not found:
            raise ModelNotFound(f"model {name} v{version} holds no {META_FILE}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(found[0], target)
    return run_id


def registered_version(record: Path) -> str:
    """The version the register stage wrote to ``record`` (reports/registry.json)."""
    if not record.exists():
        raise FileNotFoundError(f"{record} not found: run `make repro` to register one")
    return str(json.loads(record.read_text())["version"])
