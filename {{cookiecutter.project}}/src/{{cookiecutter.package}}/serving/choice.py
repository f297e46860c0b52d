"""Which model: one rule for the CLI, `make build`, batch prediction and the service.

In order, the first that is given wins:

1. flags: ``--model-dir``, ``--model-version`` or ``--alias``;
2. the environment, for the service (a process has no flags): ``SERVE_MODEL_DIR``,
   ``SERVE_MODEL_VERSION``, ``SERVE_MODEL_ALIAS``;
3. the model packed inside a bento (when serving a built bento);
4. the MLflow registry: alias ``champion``, falling back to ``challenger`` while no model has
   been promoted yet.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.modeling.meta import META_FILE
from {{ cookiecutter.package }}.modeling.model import Classifier, load_model
from {{ cookiecutter.package }}.registry.tracking import (
    ModelNotFound,
    download,
    tracking_uri,
    version_for_alias,
)

DEFAULT_ALIASES = ("champion", "challenger")
# The name of the model in BentoML's store: `make build` writes it, the service declares it.
BENTO_MODEL = "{{ cookiecutter.package }}"
INFO_FILE = "serving.json"


@dataclass(frozen=True)
class Choice:
    """Where to take the model from: a directory, or a registry version or aliases."""

    directory: Path | None = None
    version: str | None = None
    aliases: tuple[str, ...] = DEFAULT_ALIASES


@dataclass(frozen=True)
class ModelInfo:
    """Where the served model came from; shown in responses, metrics and logs."""

    name: str
    version: str
    source: str  # dir | mlflow | bento
    threshold: float
    alias: str = ""
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(
    model_dir: Path | None = None,
    version: str | None = None,
    alias: str | None = None,
    packed: Path | None = None,
) -> Choice:
    """The model the caller asked for, by the precedence in this module's docstring."""
    if model_dir is not None:
        return Choice(directory=model_dir)
    if version or alias:
        return Choice(version=version, aliases=(alias,) if alias else DEFAULT_ALIASES)
    if directory := os.environ.get("SERVE_MODEL_DIR"):
        return Choice(directory=Path(directory))
    if version := os.environ.get("SERVE_MODEL_VERSION"):
        return Choice(version=version)
    if alias := os.environ.get("SERVE_MODEL_ALIAS"):
        return Choice(aliases=(alias,))
    if packed is not None:
        return Choice(directory=packed)
    return Choice()


def load(choice: Choice) -> tuple[Classifier, ModelInfo]:
    """The chosen model, loaded, and where it came from."""
    if choice.directory is not None:
        return load_model(choice.directory), dir_info(choice.directory)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "model"
        info = export(choice, target)
        return load_model(target), info


def export(choice: Choice, target: Path) -> ModelInfo:
    """Copy the chosen model's directory to ``target`` with its origin recorded inside."""
    if choice.directory is not None:
        info = dir_info(choice.directory)  # the files are copied, not loaded
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(choice.directory, target)
    else:
        info = _download(choice, target)
    (target / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n")
    return info


def dir_info(directory: Path) -> ModelInfo:
    """Origin of a saved model directory: ``serving.json`` inside it (written by export), else
    a local model with the name and threshold from params.yaml."""
    if not (directory / META_FILE).exists():
        raise ModelNotFound(
            f"{directory} holds no model ({META_FILE} missing): point SERVE_MODEL_DIR or "
            "--model-dir at a directory written by `make repro` (models/model) or `make build`."
        )
    info_file = directory / INFO_FILE
    if info_file.exists():
        return ModelInfo(**json.loads(info_file.read_text()))
    settings = _settings()
    return ModelInfo(settings.registry.model_name, "local", "dir", settings.evaluate.threshold)


def _settings():
    from {{ cookiecutter.package }}.config import load_settings

    return load_settings()


def _download(choice: Choice, target: Path) -> ModelInfo:
    """The registered version the choice names (or its first alias that is set)."""
    settings = _settings()
    registry = settings.registry
    version, alias = choice.version, ""
    if not version:
        for alias in choice.aliases:
            version = version_for_alias(registry, alias)
            if version is not None:
                break
        else:
            raise ModelNotFound(
                f"no version of model {registry.model_name!r} has alias "
                f"{' or '.join(map(repr, choice.aliases))} in {tracking_uri(registry)}: run "
                "`make repro` to register one, or set SERVE_MODEL_DIR / SERVE_MODEL_VERSION."
            )
    run_id = download(registry, version, target)
    return ModelInfo(
        registry.model_name, version, "mlflow", settings.evaluate.threshold, alias, run_id
    )
