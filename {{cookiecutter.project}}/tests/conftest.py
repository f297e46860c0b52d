"""Shared fixtures: the real bundled data, split and a model trained once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package }}.config import Settings, load_settings
from {{ cookiecutter.package }}.contract.schema import FEATURES
from {{ cookiecutter.package }}.data import anonymise, load_source, split
from {{ cookiecutter.package }}.pipeline.train import fit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def raw_frame(settings: Settings) -> pd.DataFrame:
    """The real dataset as `make data` writes it, before anonymisation."""
    return load_source(settings.data.source)


@pytest.fixture(scope="session")
def clean_frame(settings: Settings, raw_frame: pd.DataFrame) -> pd.DataFrame:
    pii = settings.data.pii
    return anonymise(raw_frame, pii.hash, pii.drop)


@pytest.fixture(scope="session")
def splits(settings: Settings, clean_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = settings.data
    return split(clean_frame, data.target, data.test_size, settings.seed)


@pytest.fixture(scope="session")
def trained(settings: Settings, splits: tuple[pd.DataFrame, pd.DataFrame]):
    return fit(settings, splits[0])


@pytest.fixture()
def records(splits: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """A few valid model inputs from the holdout split."""
    return splits[1][FEATURES].head(25).reset_index(drop=True)
