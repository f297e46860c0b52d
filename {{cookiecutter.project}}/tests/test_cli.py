"""The CLI stages, run as DVC runs them, on real files in a scratch directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest
import yaml
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.data import write_table

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def scratch_project(tmp_path: Path, monkeypatch) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_bad_data_stops_at_validate_with_every_problem_named(
    tmp_path: Path, monkeypatch, raw_frame: pd.DataFrame, settings
) -> None:
    scratch_project(tmp_path, monkeypatch)
    bad = raw_frame.drop(columns=["contract"]).assign(
        tenure=raw_frame["tenure"].astype(str) + " months", feature_c=0.5
    )
    write_table(bad, Path(settings.data.raw))
    assert runner.invoke(app, ["prepare"]).exit_code == 0
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    for name in ["contract", "tenure", "feature_c", "int64"]:
        assert name in result.output
    report = json.loads(Path("reports/validation.json").read_text())
    assert report["valid"] is False
    assert {p["column"] for p in report["problems"]} >= {"contract", "tenure", "feature_c"}
    assert not Path("data/processed/train.parquet").exists()
    assert "Traceback" not in result.output


def test_missing_params_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 1
    assert "params.yaml not found" in result.output


def test_infer_schema_drafts_a_schema_and_never_overwrites(
    tmp_path: Path, monkeypatch, raw_frame: pd.DataFrame
) -> None:
    monkeypatch.chdir(tmp_path)
    write_table(raw_frame.head(200), Path("mine.csv"))
    assert runner.invoke(app, ["infer-schema", "mine.csv"]).exit_code == 0
    draft = pa.DataFrameSchema.from_yaml(Path("schema_draft.yaml").read_text())
    assert {"tenure", "contract", "churn"} <= set(draft.columns)
    again = runner.invoke(app, ["infer-schema", "mine.csv"])
    assert again.exit_code == 1 and "exists" in again.output


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("evaluate.threshold", 2, "evaluate.threshold is 2: Input should be less than 1"),
        ("train.model", "xgboost", "train.model is 'xgboost'"),
        ("explain.top", 0, "explain.top is 0"),
        ("gate.max_regression", "0.01", "gate.max_regression is '0.01'"),
        ("evaluate.primary_metric", "auc", "evaluate.primary_metric is 'auc'"),
        ("data.test_size", 1.5, "data.test_size is 1.5"),
    ],
)
def test_a_bad_params_value_is_one_line_naming_the_key(
    tmp_path: Path, monkeypatch, key: str, value, named: str
) -> None:
    scratch_project(tmp_path, monkeypatch)
    raw = yaml.safe_load(Path("params.yaml").read_text())
    section, name = key.split(".")
    raw[section][name] = value
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["check-params"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and named in errors[0], result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_an_unknown_params_key_is_named(tmp_path: Path, monkeypatch) -> None:
    scratch_project(tmp_path, monkeypatch)
    Path("params.yaml").write_text(Path("params.yaml").read_text() + "\nexplian:\n  top: 3\n")
    result = runner.invoke(app, ["check-params"])
    assert result.exit_code == 1
    assert "explian is not a setting; remove it or fix its spelling" in result.output
