"""Batch prediction on real files with some broken rows: good rows scored, bad rows explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from contract_data import breaking_value, column, columns
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.contract.validation import FEATURES
from {{ cookiecutter.package }}.data import read_table, write_table
from {{ cookiecutter.package }}.serving.batch import predict_file

ROWS = 120


def broken_cells() -> dict[int, tuple[str, object]]:
    """row -> (column, a bad value as it would arrive in a file), from the contract: a word in
    a number column, a value its checks refuse, a null where a value is required."""
    cells: dict[int, tuple[str, object]] = {3: (column(kinds={"int", "float"}), "three")}
    if checked := [n for n in FEATURES if breaking_value(n) is not None]:
        cells[10] = (checked[-1], breaking_value(checked[-1]))
    if required := columns(nullable=False):
        cells[11] = (required[-1], None)
    return cells


BROKEN = broken_cells()


@pytest.fixture()
def messy(splits, settings) -> pd.DataFrame:
    carried = [settings.data.id] if settings.data.id else []
    frame = splits[1].head(ROWS)[[*carried, *FEATURES]].reset_index(drop=True)
    frame = frame.astype({name: object for name, _ in BROKEN.values()})
    for row, (name, value) in BROKEN.items():
        frame.loc[row, name] = value
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_valid_rows_are_predicted_and_broken_rows_explained(
    tmp_path: Path, trained, splits, settings, messy: pd.DataFrame, suffix: str
) -> None:
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        write_table(messy, source)
    else:  # Parquet keeps column types: a text cell makes the number column text
        write_table(messy.astype({BROKEN[3][0]: str}), source)
    result = predict_file(
        trained, 0.5, source, tmp_path / f"out{suffix}", chunk_rows=25, show_progress=False
    )
    assert (result.rows, result.rejected) == (ROWS, len(BROKEN))

    output = read_table(result.output)
    good = [row for row in range(ROWS) if row not in BROKEN]
    assert output["row"].tolist() == good
    if ids := settings.data.id:  # columns outside the contract are carried through
        assert output[ids].astype(str).tolist() == messy.loc[good, ids].astype(str).tolist()
    offline = trained.predict_proba(splits[1].loc[good, FEATURES])[:, 1]
    np.testing.assert_allclose(output["probability"], offline, rtol=0, atol=1e-12)
    assert output["prediction"].tolist() == (offline >= 0.5).tolist()

    rejected = read_table(result.rejected_file)
    assert rejected["row"].tolist() == sorted(BROKEN)
    for reasons, (name, _) in zip(rejected["reasons"], BROKEN.values(), strict=True):
        assert reasons.startswith(f"{name}: expected"), reasons


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
    assert f"{ROWS - len(BROKEN)} of {ROWS} rows predicted" in result.output
    assert (tmp_path / "out.rejected.csv").exists()

    write_table(messy.drop(columns=[FEATURES[0]]), tmp_path / "in.csv")
    result = runner.invoke(app, [*args, "--model-dir", str(tmp_path / "model")])
    assert result.exit_code == 1
    assert f"lacks the contract's columns [{FEATURES[0]!r}]" in result.output
    assert "Traceback" not in result.output
