"""The one feature function, shared by training, batch and online serving.

Features are computed row by row from contract-valid input, so a single request and a whole
training set produce identical values (no training/serving skew). Anything learned from data
(category levels, scaling) lives in the fitted preprocessor, which ships inside the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from {{ cookiecutter.package }}.contract.schema import CATEGORICAL, FEATURES, NUMERIC

SERVICES = [
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
]
DERIVED = ["avg_monthly_charges", "num_services", "is_new_customer"]
# The input columns derive() reads.
ENGINEERED_FROM = ["tenure", "monthly_charges", "total_charges", "phone_service", *SERVICES]


def derive(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engineered columns, as float64 arrays, from input columns given as arrays.

    One function for a training frame and for a handful of JSON records (modeling/fast.py), so
    both get the same values down to the last bit.
    """
    tenure = np.asarray(columns["tenure"], dtype=np.float64)
    monthly = np.asarray(columns["monthly_charges"], dtype=np.float64)
    total = np.asarray(columns["total_charges"], dtype=np.float64)
    # Customers in their first month have no bill yet: their total is what they pay monthly.
    total = np.where(np.isnan(total), monthly * tenure, total)
    services = sum(np.asarray(columns[name]) == "Yes" for name in SERVICES)
    phone = np.asarray(columns["phone_service"], dtype=np.float64)
    return {
        "total_charges": total,
        "avg_monthly_charges": np.where(tenure > 0, total / np.maximum(tenure, 1.0), monthly),
        "num_services": services + phone,
        "is_new_customer": (tenure < 6).astype(np.float64),
    }


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Model features for contract-valid rows, in a fixed column order."""
    features = frame[FEATURES].copy()
    columns = {name: features[name].to_numpy() for name in ENGINEERED_FROM}
    for name, values in derive(columns).items():
        features[name] = values
    for column in CATEGORICAL:
        features[column] = features[column].astype(object)
    return features


def make_preprocessor() -> ColumnTransformer:
    """One-hot categories and scale numbers; fitted on training data only."""
    return ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                CATEGORICAL,
            ),
            ("numbers", StandardScaler(), NUMERIC + DERIVED),
        ],
        verbose_feature_names_out=False,
    )
