"""Where the MLflow tracking store comes from (params.yaml, unless MLFLOW_TRACKING_URI is set),
that it answers before a run needs it, and what a promotion writes where the store is local."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.config import load_settings
from {{ cookiecutter.package }}.registry.champion import Champion, current, promote
from {{ cookiecutter.package }}.registry.tracking import reachable, tracking_uri


def test_an_empty_tracking_uri_in_the_environment_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An unset repository variable reaches a workflow step as an empty string.
    registry = load_settings().registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert tracking_uri(registry) == registry.tracking_uri != ""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(registry) == "http://127.0.0.1:5000"


def test_an_unreachable_tracking_server_is_named_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`make repro` checks the store first: a server that does not answer stops it at once,
    with the URI and where it came from, not minutes later at `register`."""
    registry = load_settings().registry
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    expected = (
        rf"the MLflow tracking server http://127\.0\.0\.1:{port} \(from the environment "
        r"variable MLFLOW_TRACKING_URI\) does not answer \(ConnectError\): start it"
    )
    with pytest.raises(ValueError, match=expected):
        reachable(registry)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert reachable(registry) == (
        "MLflow store sqlite:///mlflow.db (from the environment variable MLFLOW_TRACKING_URI)"
    )


def test_a_release_a_local_store_does_not_hold_is_promoted_by_its_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local store is new in every CI job, so a release there is named by its run: promoting
    it tags the commit (what the next run reads) instead of failing on the missing version."""
    settings = load_settings()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    Path("metrics.json").write_text(json.dumps({"roc_auc": 0.84}))
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "release"], check=True)
    record = promote(settings, "run-0123456789ab", approved_by="canary", evidence={})
    assert record["git_tag"].startswith("champion-") and record["data_md5"] == ""
    assert current(settings) == Champion(
        "git tag", record["git_tag"], "run-0123456789ab", {"roc_auc": 0.84}
    )
