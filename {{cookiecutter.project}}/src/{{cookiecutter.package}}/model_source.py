"""Which model to serve: a directory, an MLflow version or alias, or the one packed in a bento.

The service, `make build` and batch prediction all resolve the model here, so they agree on
what "the champion" is. Environment variables choose for the service (a process has no flags):

- ``SERVE_MODEL_DIR``: a saved model directory (tests, quick local runs).
- ``SERVE_MODEL_VERSION``: a registered MLflow version number.
- ``SERVE_MODEL_ALIAS``: an MLflow alias; by default ``champion``, falling back to
  ``challenger`` while no model has been promoted yet.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.model import META_FILE, ChurnModel, load_model

DEFAULT_ALIASES = ("champion", "challenger")
DEFAULT_MODEL_NAME = "{{ cookiecutter.package }}"
DEFAULT_THRESHOLD = 0.5
INFO_FILE = "serving.json"


class ModelNotFound(FileNotFoundError):
    """No model where the settings point; the message says how to get one."""


@dataclass(frozen=True)
class ModelInfo:
    """Where the served model came from; shown in responses, metrics and logs."""

    name: str
    version: str
    source: str  # dir | mlflow | bento
    alias: str = ""
    run_id: str = ""
    threshold: float = DEFAULT_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _settings() -> tuple[str, float]:
    """Model name and decision threshold from params.yaml, when run from the project root."""
    from {{ cookiecutter.package }}.config import PARAMS_FILE, load_params

    if not PARAMS_FILE.exists():
        return DEFAULT_MODEL_NAME, DEFAULT_THRESHOLD
    params = load_params()
    return params["registry"]["model_name"], float(params["evaluate"]["threshold"])


def dir_info(directory: Path) -> ModelInfo:
    """Origin of a saved model directory: ``serving.json`` inside it (written by export), else
    a local model with the threshold from params.yaml."""
    if not (directory / META_FILE).exists():
        raise ModelNotFound(
            f"{directory} holds no model ({META_FILE} missing): set SERVE_MODEL_DIR to a "
            "directory written by `make repro` (models/model) or by `make build`."
        )
    info_file = directory / INFO_FILE
    if info_file.exists():
        return ModelInfo(**json.loads(info_file.read_text()))
    name, threshold = _settings()
    return ModelInfo(name, "local", "dir", threshold=threshold)


def _record_origin(directory: Path, info: ModelInfo) -> None:
    (directory / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n")


def from_dir(directory: Path) -> tuple[ChurnModel, ModelInfo]:
    """A saved model directory and its origin."""
    info = dir_info(directory)
    return load_model(directory), info


def _registry_version(name: str, version: str | None, aliases: tuple[str, ...]) -> tuple[str, str]:
    """(version, alias) to serve; a clear error when nothing is registered."""
    from {{ cookiecutter.package }}.registry import tracking_uri, version_for_alias

    if version:
        return version, ""
    for alias in aliases:
        found = version_for_alias(name, alias)
        if found is not None:
            return found, alias
    raise ModelNotFound(
        f"no version of model {name!r} has alias {' or '.join(map(repr, aliases))} in "
        f"{tracking_uri()}: run `make repro` to register one, or set SERVE_MODEL_DIR / "
        "SERVE_MODEL_VERSION."
    )


def download(name: str, version: str | None, aliases: tuple[str, ...], target: Path) -> ModelInfo:
    """Copy the registered model's directory to ``target`` and record its origin there."""
    import mlflow

    from {{ cookiecutter.package }}.registry import client

    resolved, alias = _registry_version(name, version, aliases)
    run_id = client().get_model_version(name, resolved).run_id or ""
    _, threshold = _settings()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(
            mlflow.artifacts.download_artifacts(f"models:/{name}/{resolved}", dst_path=scratch)
        )
        # The pyfunc wrapper keeps our saved directory as its "model" artifact.
        found = [path.parent for path in root.rglob(META_FILE)]
        if not found:
            raise ModelNotFound(f"model {name} v{resolved} holds no {META_FILE}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(found[0], target)
    info = ModelInfo(name, resolved, "mlflow", alias, run_id, threshold)
    _record_origin(target, info)
    return info


def from_registry(
    version: str | None = None, aliases: tuple[str, ...] = DEFAULT_ALIASES
) -> tuple[ChurnModel, ModelInfo]:
    name, _ = _settings()
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "model"
        info = download(name, version, aliases, target)
        return load_model(target), info


def from_environment() -> tuple[ChurnModel, ModelInfo] | None:
    """The model the SERVE_MODEL_* variables ask for, or None when none is set."""
    if directory := os.environ.get("SERVE_MODEL_DIR"):
        return from_dir(Path(directory))
    if version := os.environ.get("SERVE_MODEL_VERSION"):
        return from_registry(version=version)
    if alias := os.environ.get("SERVE_MODEL_ALIAS"):
        return from_registry(aliases=(alias,))
    return None


def export(
    target: Path, model_dir: Path | None, version: str | None, alias: str | None
) -> ModelInfo:
    """Write the chosen model to ``target`` (a directory), ready to pack into a bento."""
    if model_dir is not None:
        info = dir_info(model_dir)  # the files are copied, not loaded
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model_dir, target)
        _record_origin(target, info)
        return info
    name, _ = _settings()
    aliases = (alias,) if alias else DEFAULT_ALIASES
    return download(name, version, aliases, target)
