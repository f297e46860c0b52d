"""The CLI stages, run as DVC runs them, on real files in a scratch directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
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
    tmp_path: Path, monkeypatch, raw_frame: pd.DataFrame, params: dict
) -> None:
    scratch_project(tmp_path, monkeypatch)
    bad = raw_frame.drop(columns=["contract"]).assign(
        tenure=raw_frame["tenure"].astype(str) + " months", feature_c=0.5
    )
    write_table(bad, Path(params["data"]["raw"]))
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
