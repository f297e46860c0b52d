"""Shared fixtures: the real bundled data, split and a model trained once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package }}.config import load_params
from {{ cookiecutter.package }}.data import anonymise, load_source, split
from {{ cookiecutter.package }}.schema import FEATURES
from {{ cookiecutter.package }}.train import fit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def raw_frame(params: dict) -> pd.DataFrame:
    """The real dataset as `make data` writes it, before anonymisation."""
    return load_source(params["data"]["source"])


@pytest.fixture(scope="session")
def clean_frame(params: dict, raw_frame: pd.DataFrame) -> pd.DataFrame:
    pii = params["data"]["pii"]
    return anonymise(raw_frame, pii["hash"], pii["drop"])


@pytest.fixture(scope="session")
def splits(params: dict, clean_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(clean_frame, params["data"]["target"], params["data"]["test_size"], params["seed"])


@pytest.fixture(scope="session")
def trained(params: dict, splits: tuple[pd.DataFrame, pd.DataFrame]):
    return fit(params, splits[0])


@pytest.fixture()
def records(splits: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """A few valid model inputs from the holdout split."""
    return splits[1][FEATURES].head(25).reset_index(drop=True)
