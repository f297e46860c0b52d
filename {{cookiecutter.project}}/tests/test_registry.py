"""Where the MLflow tracking store comes from: params.yaml, unless MLFLOW_TRACKING_URI is set."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package }}.config import load_settings
from {{ cookiecutter.package }}.registry.tracking import tracking_uri


def test_an_empty_tracking_uri_in_the_environment_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An unset repository variable reaches a workflow step as an empty string.
    registry = load_settings().registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert tracking_uri(registry) == registry.tracking_uri != ""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(registry) == "http://127.0.0.1:5000"
