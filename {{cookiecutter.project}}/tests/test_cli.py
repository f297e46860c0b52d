"""The CLI stages, run as DVC runs them, on real files in a scratch directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from contract_data import column
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.contract.validation import FEATURES, missing_column
from {{ cookiecutter.package }}.data import write_table
from {{ cookiecutter.package }}.modeling import features

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
    number = column(kinds={"int", "float"})
    gone = next(name for name in FEATURES if name != number)
    bad = raw_frame.drop(columns=[gone]).assign(
        **{number: raw_frame[number].astype(str) + " units", "feature_c": 0.5}
    )
    write_table(bad, Path(settings.data.raw))
    assert runner.invoke(app, ["prepare"]).exit_code == 0
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    for name in [gone, number, "feature_c", "64"]:
        assert name in result.output
    report = json.loads(Path("reports/validation.json").read_text())
    assert report["valid"] is False
    assert {p["column"] for p in report["problems"]} >= {gone, number, "feature_c"}
    assert not Path("data/processed/train.parquet").exists()
    assert "Traceback" not in result.output


def test_missing_params_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 1
    assert "params.yaml not found" in result.output


def test_engineered_features_reading_a_gone_column_stop_train_in_one_line(
    tmp_path: Path, monkeypatch, splits
) -> None:
    """Engineered features written for other data (ENGINEERED_FROM names a column the contract
    does not have): `train` names the column, the module and the fix, with no traceback."""
    scratch_project(tmp_path, monkeypatch)
    write_table(splits[0], Path("data/processed/train.parquet"))
    monkeypatch.setattr(features, "ENGINEERED_FROM", [*features.ENGINEERED_FROM, "gone_column"])
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("ERROR: modeling/engineered.py reads ['gone_column']"), line
    assert "contract/schema.py" in line and "Traceback" not in result.output


def test_a_column_a_module_reads_and_the_data_lacks_is_named_with_the_module(records) -> None:
    with pytest.raises(KeyError) as caught:
        features.build_features(records.drop(columns=[FEATURES[0]]))
    line = missing_column(caught.value)
    assert line is not None and line.startswith(f"column {FEATURES[0]!r} is not in the data")
    assert "modeling/features.py (build_features" in line and "make adopt" in line
    assert missing_column(KeyError("a dict key, not a column")) is None


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


def test_drift_without_its_sample_names_the_variable(tmp_path: Path, monkeypatch, splits) -> None:
    scratch_project(tmp_path, monkeypatch)
    write_table(splits[0], Path("reference.parquet"))
    args = ["drift", "--reference", "reference.parquet", "--current", "recent.parquet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "recent.parquet not found" in result.output and "make drift CURRENT=" in result.output
