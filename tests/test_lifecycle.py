"""Install and run baked projects end to end: setup, lint, test, DVC pipeline, MLflow registry.

One bake per model family. These are the slow tests; each runs on its own xdist worker.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from bakery import bake, run, tool_env

VENV = Path(sys.executable).parent.parent  # the template's venv serves every bake
FAMILIES = {
    "sklearn": {"project": "churn-model"},
    "torch": {"project": "torch-churn", "model": "torch"},
}
# What the fixture runs after `make setup`. The default (sklearn) bake's `make lint test-all`
# runs under act in tests/test_workflows.py, as ci.yml runs it on GitHub: here only the
# pipeline, which those tests build on. The torch bake runs everything (`make all`).
TARGETS = {"sklearn": ["repro"], "torch": ["all"]}


def make(project: Path, *targets: str) -> str:
    result = run(
        # PYTEST_ARGS empty: serial tests, as the two lifecycle bakes already share the cores.
        ["make", *targets, f"VENV={VENV}", "UV_FLAGS=--no-deps", "PYTEST_ARGS="],
        cwd=project,
        env=tool_env(VENV),
    )
    return result.stdout + result.stderr


def tree_digest(*paths: Path) -> dict[str, str]:
    """Content hash of every file under ``paths``, to prove nothing changed."""
    digests = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def lifecycle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A baked project after `make setup` and its TARGETS."""
    answers = FAMILIES[request.param]
    project = bake(tmp_path_factory.mktemp(request.param), **answers)
    git = ["git", "-c", "commit.gpgsign=false"]
    make(project, "setup")
    run([*git, "add", "-A"], cwd=project)
    run([*git, "commit", "-qm", "baked"], cwd=project)
    output = make(project, *TARGETS[request.param])
    return request.param, project, output


# One xdist group per family: the two bakes run side by side, each test reusing its bake.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize(
        "lifecycle",
        [pytest.param(name, marks=pytest.mark.xdist_group(name)) for name in FAMILIES],
        indirect=True,
    ),
]


def test_pipeline_writes_metrics_above_the_floor(lifecycle) -> None:
    _, project, _ = lifecycle
    metrics = json.loads((project / "metrics.json").read_text())
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert metrics["roc_auc"] >= params["evaluate"]["at_least"]["roc_auc"]
    assert 0 < metrics["log_loss"] < 0.69  # better than a coin flip
    for plot in ["roc", "precision_recall", "confusion"]:
        assert (project / "reports" / "plots" / f"{plot}.csv").stat().st_size > 0
        assert (project / "reports" / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"


def test_registry_has_challenger_with_lineage(lifecycle) -> None:
    family, project, _ = lifecycle
    from mlflow import MlflowClient

    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    version = client.get_model_version_by_alias(package, "challenger")
    record = json.loads((project / "reports" / "registry.json").read_text())
    assert str(version.version) == record["version"] == "1"
    tags = client.get_run(version.run_id).data.tags
    head = run(["git", "rev-parse", "HEAD"], cwd=project).stdout.strip()
    assert tags["git_commit"] == head
    dvc_file = yaml.safe_load((project / "data" / "raw" / "churn.csv.dvc").read_text())
    assert tags["dvc_data_md5"] == dvc_file["outs"][0]["md5"]
    holdout = json.loads((project / "metrics.json").read_text())
    run_metrics = client.get_run(version.run_id).data.metrics
    assert {name: run_metrics[name] for name in holdout} == pytest.approx(holdout)
    history = project / "models" / "model" / "history.json"
    if family == "torch":  # per-epoch curves are logged as step metrics
        curve = client.get_metric_history(version.run_id, "epoch_val_loss")
        assert [m.value for m in curve] == json.loads(history.read_text())["val_loss"]
    else:
        assert not history.exists() and set(run_metrics) == set(holdout)
    assert client.get_run(version.run_id).data.params["train.model"] == family


def test_second_repro_is_a_no_op(lifecycle) -> None:
    _, project, _ = lifecycle
    output = run(["dvc", "repro"], cwd=project, env=tool_env(VENV)).stdout
    assert "Running stage" not in output
    status = run(["dvc", "status"], cwd=project, env=tool_env(VENV)).stdout
    assert "up to date" in status


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("  threshold: 0.5", "  threshold: 2", "evaluate.threshold is 2"),
        ("  model: ", "  model: xgboost #", "train.model is 'xgboost'"),
    ],
)
def test_a_bad_params_value_stops_repro_before_any_stage(lifecycle, old, new, named) -> None:
    _, project, _ = lifecycle
    params = project / "params.yaml"
    original = params.read_text()
    kept = [project / "models", project / "metrics.json", project / "reports", project / "data"]
    before = tree_digest(*kept)
    params.write_text(original.replace(old, new, 1))
    try:
        result = run(["make", "repro", f"VENV={VENV}"], project, tool_env(VENV), check=False)
    finally:
        params.write_text(original)
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert result.returncode != 0 and len(errors) == 1 and named in errors[0], output
    assert "Running stage" not in output
    assert tree_digest(*kept) == before


def champion_tags(project: Path) -> list[str]:
    return run(["git", "tag", "--list", "champion-*"], cwd=project).stdout.split()


def test_retrain_promotes_a_winner_once_and_writes_the_pull_request_body(lifecycle) -> None:
    """`make retrain` twice on unchanged data: the first run promotes, the second does not."""
    _, project, _ = lifecycle
    git = ["git", "-c", "commit.gpgsign=false"]
    run([*git, "add", "-A"], cwd=project)
    run([*git, "commit", "-qm", "pipeline run", "--allow-empty"], cwd=project)
    first = make(project, "retrain")
    assert "pull request body -> reports/retrain.md" in first
    record = json.loads((project / "reports" / "promotion.json").read_text())
    registered = json.loads((project / "reports" / "registry.json").read_text())
    assert record["promoted"] is True and record["version"] == registered["version"]
    assert record["approved_by"] == "retrain"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    champion = client.get_model_version_by_alias(registered["model_name"], "champion")
    assert str(champion.version) == registered["version"]
    assert champion.tags["promotion.approved_by"] == "retrain"
    assert len(champion_tags(project)) == 1
    body = (project / "reports" / "retrain.md").read_text()
    assert "promoted to champion" in body.splitlines()[0]
    assert "## Challenger vs champion (same holdout)" in body and "## Data drift" in body

    second = make(project, "retrain")
    assert "the challenger is the champion already" in second
    again = json.loads((project / "reports" / "promotion.json").read_text())
    assert again["promoted"] is False and len(champion_tags(project)) == 1
    assert "keeps the champion" in (project / "reports" / "retrain.md").read_text()


def test_a_worse_challenger_is_not_promoted(lifecycle) -> None:
    family, project, _ = lifecycle
    params = project / "params.yaml"
    original = params.read_text()
    weaker = {
        "sklearn": ("max_iter: 300", "max_iter: 2"),
        "torch": ("max_epochs: 60", "max_epochs: 1"),
    }
    if not champion_tags(project):  # run alone, or before the retrain test: crown one first
        git = ["git", "-c", "commit.gpgsign=false"]
        run([*git, "add", "-A"], cwd=project)
        run([*git, "commit", "-qm", "champion to defend", "--allow-empty"], cwd=project)
        make(project, "promote")
    champion_before = champion_tags(project)
    assert champion_before, "no champion to defend"
    params.write_text(original.replace(*weaker[family], 1))
    output = make(project, "repro", "promote")
    record = json.loads((project / "reports" / "promotion.json").read_text())
    state = run(["git", "log", "--oneline", "--decorate", "-4"], cwd=project).stdout
    assert record["promoted"] is False and "keep the champion" in record["reason"], (
        f"{output}\nchampion tags before: {champion_before}\n{state}"
    )
    assert champion_tags(project) == champion_before
    params.write_text(original)


def test_broken_data_stops_at_validate_and_keeps_the_old_model(lifecycle) -> None:
    """A user's file with a wrong dtype, a missing and an extra column never reaches train."""
    _, project, _ = lifecycle
    raw = project / "data" / "raw" / "churn.csv"
    kept = [project / "models" / "model", project / "metrics.json", project / "reports" / "plots"]
    before = tree_digest(*kept)
    frame = pd.read_csv(raw)
    broken = frame.drop(columns=["contract"]).assign(
        tenure=frame["tenure"].astype(str) + "m", loyalty_tier="gold"
    )
    broken.to_csv(raw, index=False)
    result = run(["dvc", "repro"], cwd=project, env=tool_env(VENV), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "failed to reproduce 'validate'" in output
    for named in ["contract", "tenure", "loyalty_tier", "int64"]:
        assert named in output
    assert "Running stage 'train'" not in output
    assert tree_digest(*kept) == before
    report = json.loads((project / "reports" / "validation.json").read_text())
    assert {p["column"] for p in report["problems"]} == {"contract", "tenure", "loyalty_tier"}
