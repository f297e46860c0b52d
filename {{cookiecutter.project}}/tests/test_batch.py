"""Batch prediction on real files with some broken rows: good rows scored, bad rows explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.contract.schema import FEATURES
from {{ cookiecutter.package }}.data import read_table, write_table
from {{ cookiecutter.package }}.serving.batch import predict_file

BROKEN = {  # row -> (column, bad value as it would arrive in a file)
    3: ("tenure", "three"),
    10: ("contract", "Lifetime"),
    11: ("monthly_charges", None),
    40: ("senior_citizen", 2),
}


@pytest.fixture()
def messy(splits) -> pd.DataFrame:
    frame = splits[1].head(120)[["customer_id", *FEATURES]].reset_index(drop=True)
    frame = frame.astype({"tenure": object, "contract": object})
    for row, (column, value) in BROKEN.items():
        frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_valid_rows_are_predicted_and_broken_rows_explained(
    tmp_path: Path, trained, splits, messy: pd.DataFrame, suffix: str
) -> None:
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        write_table(messy, source)
    else:  # Parquet keeps column types: a text cell makes the tenure column text
        write_table(messy.astype({"tenure": str}), source)
    result = predict_file(
        trained, 0.5, source, tmp_path / f"out{suffix}", chunk_rows=25, show_progress=False
    )
    assert (result.rows, result.rejected) == (120, len(BROKEN))

    output = read_table(result.output)
    good = [row for row in range(120) if row not in BROKEN]
    assert output["row"].tolist() == good
    assert output["customer_id"].tolist() == messy.loc[good, "customer_id"].tolist()
    offline = trained.predict_proba(splits[1].loc[good, FEATURES])[:, 1]
    np.testing.assert_allclose(output["churn_probability"], offline, rtol=0, atol=1e-12)
    assert output["churn"].tolist() == (offline >= 0.5).tolist()

    rejected = read_table(result.rejected_file)
    assert rejected["row"].tolist() == sorted(BROKEN)
    for reasons, (column, _) in zip(rejected["reasons"], BROKEN.values(), strict=True):
        assert reasons.startswith(f"{column}: expected"), reasons


def test_each_output_row_carries_its_key(tmp_path: Path, trained, messy: pd.DataFrame) -> None:
    """A row's key is what a labels file names later: the input's own request_id when it has
    one, else ``<run id>-<row>``, unique across rows and runs."""
    write_table(messy, tmp_path / "in.csv")
    keys = []
    for run in range(2):
        out = tmp_path / f"out{run}.csv"
        predict_file(trained, 0.5, tmp_path / "in.csv", out, show_progress=False)
        output, rejected = read_table(out), read_table(out.with_name(f"out{run}.rejected.csv"))
        run_ids, rows = zip(*(key.rsplit("-", 1) for key in output["request_id"]), strict=True)
        assert len(set(run_ids)) == 1 and list(rows) == [str(row) for row in output["row"]]
        assert set(rejected["row"]) == set(BROKEN) and rejected["request_id"].notna().all()
        keys += output["request_id"].tolist()
    assert len(set(keys)) == len(keys)  # two runs of the same file: no key twice
    write_table(messy.assign(request_id=[f"order-{i}" for i in range(120)]), tmp_path / "own.csv")
    predict_file(trained, 0.5, tmp_path / "own.csv", tmp_path / "own-out.csv", show_progress=False)
    output = read_table(tmp_path / "own-out.csv")
    assert output["request_id"].tolist() == [f"order-{row}" for row in output["row"]]


def test_cli_predicts_a_file_and_refuses_one_missing_columns(
    tmp_path: Path, trained, messy: pd.DataFrame
) -> None:
    trained.save(tmp_path / "model")
    write_table(messy, tmp_path / "in.csv")
    runner = CliRunner()
    args = ["predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]
    result = runner.invoke(app, [*args, "--model-dir", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    assert "116 of 120 rows predicted" in result.output
    assert (tmp_path / "out.rejected.csv").exists()

    write_table(messy.drop(columns=["contract"]), tmp_path / "in.csv")
    result = runner.invoke(app, [*args, "--model-dir", str(tmp_path / "model")])
    assert result.exit_code == 1
    assert "lacks the contract's columns ['contract']" in result.output
    assert "Traceback" not in result.output
