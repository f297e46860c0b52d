"""The one feature function, shared by training, batch and online serving.

Features are computed row by row from contract-valid input, so a single request and a whole
training set produce identical values (no training/serving skew). Anything learned from data
(category levels, scaling) lives in the fitted preprocessor, which ships inside the model.
"""

from __future__ import annotations

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


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Model features for contract-valid rows, in a fixed column order."""
    features = frame[FEATURES].copy()
    tenure = features["tenure"].astype("float64")
    monthly = features["monthly_charges"].astype("float64")
    # Customers in their first month have no bill yet: their total is what they pay monthly.
    total = features["total_charges"].astype("float64").fillna(monthly * tenure)
    features["total_charges"] = total
    features["avg_monthly_charges"] = np.where(tenure > 0, total / tenure.clip(lower=1), monthly)
    services = (features[SERVICES].astype(str) == "Yes").sum(axis=1)
    features["num_services"] = (services + features["phone_service"]).astype("float64")
    features["is_new_customer"] = (tenure < 6).astype("float64")
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
