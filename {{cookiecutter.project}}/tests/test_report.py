"""The PR model report and the quality gate, on a real two-commit git history.

The base commit holds a real pipeline run; the change edits params.yaml and reruns it, as a
pull request would. The report must show the real metric deltas, the params diff and both
sets of plots, and the gate must fail when the primary metric regresses beyond tolerance.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.config import load_settings, parse_settings
from {{ cookiecutter.package }}.data import labels, write_table
from {{ cookiecutter.package }}.lifecycle.gate import check
from {{ cookiecutter.package }}.lifecycle.retrain import metrics_section
from {{ cookiecutter.package }}.modeling.metrics import METRICS, compute
from {{ cookiecutter.package }}.pipeline.evaluate import score
from {{ cookiecutter.package }}.registry.promotion import decide

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
STAGES = ["prepare", "validate", "train", "evaluate", "explain"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def write_params(params: dict) -> None:
    config.PARAMS_FILE.write_text(yaml.safe_dump(params, sort_keys=False))


def run_pipeline() -> None:
    """The DVC stages in order, through the CLI that dvc.yaml calls."""
    for stage in STAGES:
        result = runner.invoke(app, [stage])
        assert result.exit_code == 0, f"{stage}: {result.output}"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, raw_frame: pd.DataFrame) -> Path:
    """A git repo: `main` with a pipeline run, then an uncommitted change with max_iter=3."""
    repo = tmp_path_factory.mktemp("history")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        for name, value in [("NAME", "report-tests"), ("EMAIL", "report-tests@example.com")]:
            patch.setenv(f"GIT_AUTHOR_{name}", value)
            patch.setenv(f"GIT_COMMITTER_{name}", value)
        git("init", "--quiet", "-b", "main")
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        # The report does not depend on the model family; gradient boosting keeps this fast.
        params["train"]["model"] = "sklearn"
        write_params(params)
        write_table(raw_frame, Path(params["data"]["raw"]))
        run_pipeline()
        git("add", "-A")
        git("commit", "--quiet", "-m", "base: a full pipeline run")
        # The pull request: three boosting rounds cannot match three hundred.
        params["train"]["sklearn"]["max_iter"] = 3
        write_params(params)
        run_pipeline()
    return repo


def metrics_at(repo: Path, ref: str | None = None) -> dict[str, float]:
    if ref is None:
        return json.loads((repo / config.METRICS_FILE).read_text())
    return json.loads(git("-C", str(repo), "show", f"{ref}:{config.METRICS_FILE}"))


def test_report_shows_real_deltas_params_diff_and_plots(history: Path, monkeypatch) -> None:
    monkeypatch.chdir(history)
    result = runner.invoke(app, ["report", "--base", "main"])
    assert result.exit_code == 0, result.output
    report = (history / "report.md").read_text()
    before, after = metrics_at(history, "main"), metrics_at(history)
    for name in ["accuracy", "roc_auc", "log_loss"]:
        delta = after[name] - before[name]
        assert f"| {before[name]:.4f} | {after[name]:.4f} | {delta:+.4f} |" in report
    assert "| `train.sklearn.max_iter` | 300 | 3 |" in report
    for side in ["base", "now"]:
        for plot in ["roc", "precision_recall", "confusion"]:
            png = history / config.REPORT_ASSETS / side / f"{plot}.png"
            assert png.read_bytes()[:4] == b"\x89PNG"
            assert f"(reports/report/{side}/{plot}.png)" in report
    overlay = history / config.REPORT_ASSETS / "compare.png"
    assert overlay.read_bytes()[:4] == b"\x89PNG" and "(reports/report/compare.png)" in report
    # Importance of the change next to the base's, with the base's rank.
    importance = json.loads((history / config.IMPORTANCE).read_text())["features"]
    top = next(iter(importance))
    assert f"| 1 | {top} | {importance[top]['mean']:.4f}" in report
    assert "The data keeps the contract" in report


def test_regression_beyond_tolerance_fails_the_gate_with_the_reason_on_top(
    history: Path, monkeypatch
) -> None:
    monkeypatch.chdir(history)
    settings = load_settings()
    before, after = metrics_at(history, "main"), metrics_at(history)
    drop = before["roc_auc"] - after["roc_auc"]
    assert drop > settings.gate.max_regression, "the change must really regress"

    result = runner.invoke(app, ["gate", "--base", "main"])
    assert result.exit_code == 1
    assert "quality gate failed" in result.output and "roc_auc regressed" in result.output
    assert "Traceback" not in result.output

    runner.invoke(app, ["report", "--base", "main"])
    first_lines = (history / "report.md").read_text().splitlines()[:3]
    assert any("Quality gate FAILED" in line and f"{drop:.4f}" in line for line in first_lines)


def test_tolerance_comes_from_params(history: Path, monkeypatch) -> None:
    monkeypatch.chdir(history)
    raw = load_settings().model_dump()
    raw["gate"]["max_regression"] = 0.5
    before, after = metrics_at(history, "main"), metrics_at(history)
    assert check(parse_settings(raw), after, before).passed
    raw["gate"]["max_regression"] = -1
    with pytest.raises(ValueError, match=r"gate\.max_regression is -1"):
        check(parse_settings(raw), after, before)


def test_without_a_baseline_the_gate_passes_and_says_why(history: Path, monkeypatch) -> None:
    monkeypatch.chdir(history)
    verdict = check(load_settings(), metrics_at(history), None)
    assert verdict.passed and "no baseline" in verdict.reason


def test_importance_scores_each_metric_as_evaluate_does(splits, trained, settings) -> None:
    truth = labels(splits[1], settings.data)
    scores = score(trained, splits[1])
    expected = compute(truth, scores, 0.5)
    assert {name: compute(truth, scores, 0.5, [name])[name] for name in METRICS} == expected


def test_lower_is_better_metrics_regress_upwards(settings) -> None:
    raw = settings.model_dump()
    raw["evaluate"]["primary_metric"] = "log_loss"
    raw["gate"] = {"max_regression": 0.01}
    on_log_loss = parse_settings(raw)
    assert not check(on_log_loss, {"log_loss": 0.45}, {"log_loss": 0.40}).passed
    assert check(on_log_loss, {"log_loss": 0.35}, {"log_loss": 0.40}).passed
    raw["evaluate"]["at_most"] = {"log_loss": 0.30}  # a ceiling, in the metric's direction
    verdict = check(parse_settings(raw), {"log_loss": 0.35}, {"log_loss": 0.40})
    assert not verdict.passed and "above the ceiling 0.3" in verdict.reason


def test_a_limit_against_the_metric_direction_is_rejected(settings) -> None:
    raw = settings.model_dump()
    raw["evaluate"]["at_least"] = {"log_loss": 0.3}
    with pytest.raises(
        ValueError, match=r"lower is better for log_loss: put it under evaluate\.at_most"
    ):
        parse_settings(raw)


def test_the_gate_and_promotion_read_rounding_noise_alike(settings) -> None:
    """0.84 - 0.83 is 0.010000000000000009 in floating point: a regression of exactly
    gate.max_regression, which the gate allows as promotion's guardrail does."""
    raw = settings.model_dump()
    raw["evaluate"].update(primary_metric="roc_auc", at_least={"roc_auc": 0.83}, at_most={})
    raw["gate"] = {"max_regression": 0.01}
    gated = parse_settings(raw)
    verdict = check(gated, {"roc_auc": 0.83}, {"roc_auc": 0.84})
    assert verdict.passed and "within the 0.01 allowed" in verdict.reason
    assert not check(gated, {"roc_auc": 0.8299}, {"roc_auc": 0.84}).passed
    decision = decide(
        {"roc_auc": 0.85, "log_loss": 0.42},
        {"roc_auc": 0.84, "log_loss": 0.41},
        primary="roc_auc",
        min_delta=0.0,
        guardrails={"log_loss": 0.01},
        floor=0.83,
    )
    assert decision.promote and "within tolerance 0.01" in decision.reason


def test_the_retrain_report_shows_the_pr_reports_table(settings) -> None:
    challenge = {
        "challenger": {"roc_auc": 0.842, "log_loss": 0.40, "accuracy": 0.8},
        "champion": {"where": "champion-20250101-000000", "metrics": {}},
        "champion_scored": {"roc_auc": 0.84, "log_loss": 0.41},
        "basis": "the model with alias champion scored on this holdout",
    }
    lines = metrics_section(settings, challenge)
    assert "| metric | champion | challenger | change | |" in lines
    assert "| accuracy | - | 0.8000 | | new |" in lines
    assert "| roc_auc ★ | 0.8400 | 0.8420 | +0.0020 | ✅ better |" in lines
    assert "| log_loss | 0.4100 | 0.4000 | -0.0100 | ✅ better |" in lines
    assert any(line.endswith("Lower is better for: log_loss.") for line in lines)


def test_unknown_base_ref_is_one_clear_error(history: Path, monkeypatch) -> None:
    monkeypatch.chdir(history)
    result = runner.invoke(app, ["report", "--base", "origin/no-such-branch"])
    assert result.exit_code == 1
    assert "origin/no-such-branch" in result.output and "git fetch" in result.output
    assert "Traceback" not in result.output


def test_link_mode_points_at_the_run_artifact(history: Path, monkeypatch) -> None:
    monkeypatch.chdir(history)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/churn")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    out = history / "comment.md"
    result = runner.invoke(
        app, ["report", "--base", "main", "--images", "link", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "](https://github.com/acme/churn/actions/runs/42)" in text
    assert ".png" not in text  # nothing for CML to upload to a third-party host
