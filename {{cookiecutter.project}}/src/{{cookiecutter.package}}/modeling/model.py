"""Model families behind one interface: fit / predict_proba / save / load.

Each model takes contract-valid input frames and applies ``build_features`` itself, so every
caller (training, evaluation, batch, the service) gets the same features by construction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from {{ cookiecutter.package }}.modeling.fast import record_features
from {{ cookiecutter.package }}.modeling.features import build_features, make_preprocessor

META_FILE = "meta.json"
FAMILIES = "{{ 'sklearn, torch' if cookiecutter.model == 'torch' else 'sklearn' }}"


class ChurnModel(Protocol):
    family: ClassVar[str]

    def fit(self, frame: pd.DataFrame, labels: np.ndarray) -> ChurnModel: ...

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


class SklearnModel:
    """Histogram gradient boosting on one-hot and scaled features."""

    family: ClassVar[str] = "sklearn"

    def __init__(self, params: dict[str, Any], seed: int) -> None:
        self.params = params
        self.seed = seed
        self.pipeline = Pipeline(
            [
                ("preprocess", make_preprocessor()),
                ("classifier", HistGradientBoostingClassifier(random_state=seed, **params)),
            ]
        )
        self._rows: Callable[[Sequence[Mapping[str, Any]]], np.ndarray] | None = None

    def fit(self, frame: pd.DataFrame, labels: np.ndarray) -> SklearnModel:
        self.pipeline.fit(build_features(frame), labels)
        self._rows = None
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities of shape (rows, 2): columns are [stays, churns]."""
        return self.pipeline.predict_proba(build_features(frame))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``predict_proba`` for contract-valid JSON records, without building a DataFrame.

        The service's path: the same probabilities as ``predict_proba`` on the records' frame
        (tests/test_model.py), at a fraction of the cost for one record (modeling/fast.py).
        """
        if self._rows is None:
            self._rows = record_features(self.pipeline[0])
        return self.pipeline[-1].predict_proba(self._rows(records))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, directory / "pipeline.joblib")
        _write_meta(directory, self.family, self.params, self.seed)

    @classmethod
    def load(cls, directory: Path) -> SklearnModel:
        meta = _read_meta(directory)
        model = cls(meta["params"], meta["seed"])
        model.pipeline = joblib.load(directory / "pipeline.joblib")
        return model


def _write_meta(directory: Path, family: str, params: dict[str, Any], seed: int) -> None:
    meta = {"family": family, "params": params, "seed": seed}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{directory} holds no model ({META_FILE} missing): run `make repro`."
        )
    return json.loads(path.read_text())


def _family(name: str) -> type:
    """The class of a model family; families with heavy imports load only when asked for."""
{%- if cookiecutter.model == 'torch' %}
    if name == "torch":
        from {{ cookiecutter.package }}.modeling.torch_model import TorchModel

        return TorchModel
{%- endif %}
    if name == SklearnModel.family:
        return SklearnModel
    raise ValueError(f"model family {name!r} is not part of this project; it has: {FAMILIES}")


def build_model(family: str, params: dict[str, Any], seed: int) -> ChurnModel:
    """A fresh, unfitted model of the family named in params.yaml (train.model)."""
    return _family(family)(params, seed)


def load_model(directory: Path) -> ChurnModel:
    """Load whatever family was saved in ``directory``."""
    return _family(_read_meta(directory)["family"]).load(directory)
