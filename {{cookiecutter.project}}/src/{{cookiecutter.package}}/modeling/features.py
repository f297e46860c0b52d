"""The one feature function, shared by training, batch and online serving.

Features are computed row by row from contract-valid input, so a single request and a whole
training set produce identical values (no training/serving skew). Engineered columns come from
modeling/engineered.py. Anything learned from data (category levels, scaling) lives in the
fitted preprocessor, which ships inside the model.

A missing text value is a category of its own: every path hands the encoder NaN for it (a JSON
null, a None in a hand-built frame and an empty CSV cell alike), so the service, batch and
training encode it the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from {{ cookiecutter.package }}.contract.validation import CATEGORICAL, FEATURES, NUMERIC
from {{ cookiecutter.package }}.modeling.engineered import DERIVED, ENGINEERED_FROM, derive


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Model features for contract-valid rows, in a fixed column order."""
    if unknown := [name for name in ENGINEERED_FROM if name not in FEATURES]:
        raise ValueError(
            f"modeling/engineered.py reads {unknown} (ENGINEERED_FROM), which the contract "
            "(contract/schema.py) does not have: remove them there and from derive(), or add "
            "the columns back to the contract"
        )
    features = frame[FEATURES].copy()
    columns = {name: features[name].to_numpy() for name in ENGINEERED_FROM}
    for name, values in derive(columns).items():
        features[name] = values
    for column in CATEGORICAL:
        text = features[column].astype(object)
        features[column] = text.where(text.notna(), np.nan)
    return features


def make_preprocessor(
    categorical: Sequence[str] | None = None, numeric: Sequence[str] | None = None
) -> ColumnTransformer:
    """One-hot categories and scale numbers; fitted on training data only.

    The columns default to the contract's (text, then numbers and engineered columns); tests
    pass others to check the compiled path against a second, synthetic contract.
    """
    return ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL if categorical is None else categorical),
            ),
            ("numbers", StandardScaler(), list(NUMERIC + DERIVED if numeric is None else numeric)),
        ],
        verbose_feature_names_out=False,
    )
