"""Features for a few JSON records straight into a NumPy matrix, without pandas.

For one record, a DataFrame, ``build_features`` and the ColumnTransformer cost about 20 ms; the
classifier itself about 1 ms. So this module reads the fitted preprocessor once (each one-hot
column's category positions, the scaler's means and scales) and fills the model's input row
with plain Python and NumPy: the same values, in the same column order, as
``preprocessor.transform(build_features(frame))``. The engineered columns come from the same
``derive`` that ``build_features`` calls, and a missing text value (None, as JSON null arrives)
takes the column of the encoder's missing category, as NaN does in ``build_features``.
tests/test_fast_path.py and the skew tests in tests/test_model.py prove that all paths agree.

Only the transformers ``make_preprocessor`` builds are compiled (OneHotEncoder without dropped or
infrequent categories, StandardScaler); for anything else ``compile_features`` returns None and
``record_features`` falls back to the DataFrame path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from {{ cookiecutter.package }}.contract.validation import CATEGORICAL
from {{ cookiecutter.package }}.modeling.engineered import DERIVED, ENGINEERED_FROM, derive
from {{ cookiecutter.package }}.modeling.features import build_features

Records = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class OneHot:
    column: str
    offset: int  # first output column of this input column
    positions: dict[Any, int]  # category -> its output column; unknown ones stay all zeros
    # The output column of a missing value, when training data had missing values here (the
    # encoder learnt NaN as a category); None otherwise: a missing value is then unknown.
    missing: int | None = None

    def position(self, value: Any) -> int | None:
        if value is None or (type(value) is float and math.isnan(value)):
            return self.missing
        return self.positions.get(value)


@dataclass(frozen=True)
class Scaled:
    columns: list[str]
    offset: int
    mean: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class RecordFeatures:
    """The fitted preprocessor as plain lookups: records in, model input matrix out."""

    width: int
    one_hot: list[OneHot]
    scaled: list[Scaled]
    # Whether a scaled column is one ``derive`` makes or reads (and may replace): only then do
    # the records need the engineered inputs.
    derives: bool = True

    def __call__(self, records: Records) -> np.ndarray:
        rows = np.zeros((len(records), self.width))
        for part in self.one_hot:
            for row, record in enumerate(records):
                position = part.position(record[part.column])
                if position is not None:
                    rows[row, part.offset + position] = 1.0
        derived = (
            derive({name: np.array([r[name] for r in records]) for name in ENGINEERED_FROM})
            if self.derives
            else {}
        )
        for part in self.scaled:
            values = np.empty((len(records), len(part.columns)))
            for index, name in enumerate(part.columns):
                if name in derived:
                    values[:, index] = derived[name]
                else:  # None (a missing optional number) becomes NaN, as in a frame
                    values[:, index] = np.array([r[name] for r in records], dtype=np.float64)
            # The scaler's own arithmetic, in its order: subtract, then divide (bit-identical).
            values -= part.mean
            values /= part.scale
            rows[:, part.offset : part.offset + len(part.columns)] = values
        return rows


def record_features(preprocessor: ColumnTransformer) -> Callable[[Records], np.ndarray]:
    """Records -> the model's input matrix: compiled when possible, else through a DataFrame."""
    compiled = compile_features(preprocessor)
    if compiled is not None:
        return compiled

    def through_frame(records: Records) -> np.ndarray:
        from {{ cookiecutter.package }}.contract.records import contract

        frame = contract().to_frame(records)
        return np.asarray(preprocessor.transform(build_features(frame)), dtype=np.float64)

    return through_frame


def compile_features(preprocessor: ColumnTransformer) -> RecordFeatures | None:
    """The fitted ``preprocessor`` compiled for records; None when it has a step this cannot do."""
    one_hot: list[OneHot] = []
    scaled: list[Scaled] = []
    offset = 0
    for _name, step, columns in preprocessor.transformers_:
        if step == "drop" or len(columns) == 0:
            continue
        if isinstance(step, OneHotEncoder) and _plain_one_hot(step):
            for column, categories in zip(columns, step.categories_, strict=True):
                values = categories.tolist()
                # NaN != NaN, so the missing category cannot be a dict key that lookups find.
                missing = [index for index, value in enumerate(values) if pd.isna(value)]
                positions = {value: index for index, value in enumerate(values) if pd.notna(value)}
                one_hot.append(OneHot(column, offset, positions, missing[0] if missing else None))
                offset += len(categories)
        elif isinstance(step, StandardScaler) and _numbers(columns):
            count = len(columns)
            mean = step.mean_ if step.with_mean else np.zeros(count)
            scale = step.scale_ if step.with_std else np.ones(count)
            scaled.append(Scaled(list(columns), offset, mean, scale))
            offset += count
        else:
            return None
    if offset != len(preprocessor.get_feature_names_out()):
        return None
    engineered = set(DERIVED) | set(ENGINEERED_FROM)
    derives = any(name in engineered for part in scaled for name in part.columns)
    return RecordFeatures(offset, one_hot, scaled, derives)


def _plain_one_hot(step: OneHotEncoder) -> bool:
    infrequent = getattr(step, "infrequent_categories_", None)
    return (
        step.drop is None
        and step.handle_unknown == "ignore"
        and not step.sparse_output
        and (infrequent is None or all(values is None for values in infrequent))
    )


def _numbers(columns: list[str]) -> bool:
    # Numbers and derived features: the contract's text columns would need their own step.
    return not any(name in CATEGORICAL for name in columns)
