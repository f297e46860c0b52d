"""Shared fixtures: the project's data (params.yaml data.source), its split and a model trained
once per test run. Tests read columns from the contract (contract_data.py), never by name."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings as hypothesis_settings

# The project's modules (pandas, sklearn, pandera) are imported by the fixtures that use them:
# pytest-xdist's controller process loads this file too and runs no test.
if TYPE_CHECKING:
    import pandas as pd

    from {{ cookiecutter.package }}.config import Settings

ROOT = Path(__file__).resolve().parents[1]

# `make test` runs with --hypothesis-profile=quick: a quarter of hypothesis' 100 examples for the
# properties that take the profile's count; `make test-all` (CI) runs the full 100.
hypothesis_settings.register_profile("quick", max_examples=25)


@pytest.fixture(scope="session")
def settings() -> Settings:
    from {{ cookiecutter.package }}.config import load_settings

    return load_settings(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def raw_frame(settings: Settings) -> pd.DataFrame:
    """The real dataset as `make data` writes it, before anonymisation."""
    from {{ cookiecutter.package }}.data import load_source

    return load_source(settings.data.source, settings.data.id)


@pytest.fixture(scope="session")
def clean_frame(settings: Settings, raw_frame: pd.DataFrame) -> pd.DataFrame:
    from {{ cookiecutter.package }}.data import anonymise

    pii = settings.data.pii
    return anonymise(raw_frame, pii.hash, pii.drop)


@pytest.fixture(scope="session")
def splits(settings: Settings, clean_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    from {{ cookiecutter.package }}.data import split

    data = settings.data
    return split(clean_frame, data.target, data.test_size, settings.seed)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that build and serve a bento, or are marked slow, first, in their files' order.

    Under xdist (one file per worker at a time) the slowest file then starts at once on one
    worker while the others share the rest, instead of running alone at the end.
    """
    items.sort(
        key=lambda item: "server" not in item.fixturenames and not item.get_closest_marker("slow")
    )


@pytest.fixture(scope="session", autouse=True)
def one_model_thread() -> Iterator[None]:
    """One OpenMP/BLAS thread per test process, as the service runs its model.

    `make test` runs one worker per core; a thread team per worker oversubscribes the
    cores, and on a busy machine a single-row prediction then waits for a core per thread.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def trained(
    settings: Settings,
    splits: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
):
    """The model of params.yaml, trained once per test run.

    Under pytest-xdist each worker is its own session: the first to need the model trains and
    saves it, the others wait for it and load it (identical predictions; test_model.py checks
    the round trip), instead of training it again on a shared core.
    """
    from {{ cookiecutter.package }}.modeling.model import load_model
    from {{ cookiecutter.package }}.pipeline.train import fit

    # A worker of this run has `workerinput`; an environment variable alone may be inherited
    # from an outer pytest, and its temporary folder's parent would then be shared by others.
    if not hasattr(request.config, "workerinput"):
        return fit(settings, splits[0])
    shared = tmp_path_factory.getbasetemp().parent / "trained-model"
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / "meta.json").exists():
            fit(settings, splits[0]).save(shared)
    return load_model(shared)


@pytest.fixture()
def github() -> Iterator:
    """The GitHub API stand-in on loopback (tests/fake_github.py): records every request."""
    from fake_github import running

    with running() as server:
        yield server


@pytest.fixture()
def records(splits: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """A few valid model inputs from the holdout split."""
    from {{ cookiecutter.package }}.contract.validation import FEATURES

    return splits[1][FEATURES].head(25).reset_index(drop=True)


@pytest.fixture(scope="session")
def shifted_split(splits: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """The holdout moved as far as the contract allows (contract_data.shifted), and the columns
    that moved: what drift and monitoring must flag."""
    from contract_data import shifted

    return shifted(splits[1], splits[0])
