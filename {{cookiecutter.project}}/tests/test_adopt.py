"""`adopt` on a dataset of another shape, in a scratch copy of the project: the contract it writes
holds on that data, params.yaml follows, a second run changes nothing, refusals write nothing,
and a file the user changed is theirs unless --force."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.config import ENGINEERED_FILE, SCHEMA_FILE, load_settings
from {{ cookiecutter.package }}.contract.validation import validate
from {{ cookiecutter.package }}.data import read_table

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
ADOPT = ["adopt", "loans.csv", "--target", "outcome", "--positive-class", "late", "--id", "ref"]


def loans(rows: int = 400, seed: int = 3) -> pd.DataFrame:
    """A table unlike the example: an id, a nullable number, a whole number, nullable text with
    few values, free text, and a two-class label."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 500.0, rows).round(2)
    amount[rng.random(rows) < 0.1] = np.nan
    purpose = rng.choice(np.array(["car", "home", "study", None], dtype=object), rows)
    return pd.DataFrame(
        {
            "ref": [f"L-{index:05d}" for index in range(rows)],
            "amount": amount,
            "term_months": rng.choice([12, 24, 36, 60], rows),
            "purpose": purpose,
            "note": [f"note {index}" for index in range(rows)],
            "outcome": np.where(rng.random(rows) < 0.3, "late", "paid"),
        }
    )


@pytest.fixture()
def project(tmp_path: Path, monkeypatch) -> Path:
    """A scratch project: params.yaml and the two files adopt writes, as the bake ships them."""
    for path in [Path("params.yaml"), SCHEMA_FILE, ENGINEERED_FILE]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    monkeypatch.chdir(tmp_path)
    loans().to_csv("loans.csv", index=False)
    return tmp_path


def digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def load(path: Path):
    """The module at ``path``, freshly imported (pandera reads its annotations from it)."""
    name = f"adopted_{path.stem}_{len(sys.modules)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_contract_it_writes_holds_on_the_data_it_came_from(project: Path) -> None:
    result = runner.invoke(app, ADOPT)
    assert result.exit_code == 0, result.output
    settings = load_settings()
    data = settings.data
    assert (data.target, data.positive_class, data.id) == ("outcome", "late", "ref")
    assert data.source == "loans.csv" and Path(data.raw).exists()

    schema = load(SCHEMA_FILE)
    raw = read_table(Path(data.raw))
    validate(raw, schema.RawRecord)  # the contract holds on its own data, nothing coerced
    columns = schema.ModelInput.to_schema().columns
    assert list(columns) == ["amount", "term_months", "purpose", "note"]
    assert columns["amount"].nullable and columns["purpose"].nullable
    assert not columns["term_months"].nullable and str(columns["term_months"].dtype) == "int64"
    checks = {check.name: check.statistics for check in columns["purpose"].checks}
    assert checks["isin"]["allowed_values"] == ["car", "home", "study"]
    assert not columns["note"].checks  # 400 distinct values: text without an allowed list
    assert schema.ModelInput.Config.coerce is False
    assert "every value differs" in result.output  # the free text is flagged for review

    engineered = load(ENGINEERED_FILE)
    assert engineered.DERIVED == [] and engineered.ENGINEERED_FROM == []
    assert "# The engineered features before `adopt` reset them:" in ENGINEERED_FILE.read_text()
    params = Path("params.yaml").read_text()
    assert "adopt: no-skill level" in params  # the example's floor is reset and flagged
    assert settings.evaluate.limit(settings.evaluate.primary_metric) is not None
    assert "Review before `make repro`" in result.output


def test_a_second_run_changes_nothing(project: Path) -> None:
    assert runner.invoke(app, ADOPT).exit_code == 0
    before = digest(project)
    again = runner.invoke(app, ADOPT)
    assert again.exit_code == 0, again.output
    assert "nothing to change" in again.output
    assert digest(project) == before
    flags_from_params = runner.invoke(app, ["adopt"])  # everything read from params.yaml
    assert flags_from_params.exit_code == 0, flags_from_params.output
    assert digest(project) == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: f.assign(outcome=["late", "paid", "written off", "paid"] * 100), "3 classes"),
        (lambda f: f.assign(ref=["L-1", *f["ref"][1:-1], "L-1"]), "'ref' is not unique"),
        (lambda f: f.assign(outcome=[None, *f["outcome"][1:]]), "missing in 1 rows"),
        (lambda f: f.drop(columns=["outcome"]), "has no column 'outcome'"),
    ],
    ids=["three-classes", "repeated-id", "unlabelled-row", "no-target"],
)
def test_a_refusal_names_the_problem_and_writes_nothing(project: Path, change, words) -> None:
    change(loans()).to_csv("loans.csv", index=False)
    before = digest(project)
    result = runner.invoke(app, ADOPT)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and words in errors[0], result.output
    assert "Traceback" not in result.output
    assert digest(project) == before and not Path("data").exists()


def test_a_file_it_cannot_read_is_named(project: Path) -> None:
    Path("loans.parquet").write_bytes(b"not a parquet file")
    before = digest(project)
    result = runner.invoke(app, ["adopt", "loans.parquet", "--target", "outcome"])
    assert result.exit_code == 1 and "ERROR: cannot read loans.parquet" in result.output
    assert digest(project) == before


def test_a_file_the_user_changed_is_theirs_unless_forced(project: Path) -> None:
    assert runner.invoke(app, ADOPT).exit_code == 0
    edited = SCHEMA_FILE.read_text().replace(
        "class Config:", "# tightened by hand\n    class Config:"
    )
    SCHEMA_FILE.write_text(edited)
    same = runner.invoke(app, ADOPT)  # same data: the user's edit stands
    assert same.exit_code == 0 and SCHEMA_FILE.read_text() == edited

    loans().assign(extra=1.5).to_csv("loans.csv", index=False)  # new data needs a new contract
    refused = runner.invoke(app, ADOPT)
    assert refused.exit_code == 1 and "pass --force" in refused.output
    assert SCHEMA_FILE.read_text() == edited
    forced = runner.invoke(app, [*ADOPT, "--force"])
    assert forced.exit_code == 0, forced.output
    assert "extra" in load(SCHEMA_FILE).ModelInput.to_schema().columns


def test_what_it_writes_is_ruff_clean(project: Path) -> None:
    assert runner.invoke(app, ADOPT).exit_code == 0
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this Python (make setup installs it)")
    files = [str(SCHEMA_FILE), str(ENGINEERED_FILE)]
    config = ["--no-cache", "--config", str(ROOT / "pyproject.toml")]  # line length 100
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [str(ruff), *command, *config, *files], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_params_keep_their_comments_and_stay_valid(project: Path) -> None:
    before = yaml.safe_load(Path("params.yaml").read_text())
    assert runner.invoke(app, ADOPT).exit_code == 0
    text = Path("params.yaml").read_text()
    after = yaml.safe_load(text)
    assert text.count("#") >= (ROOT / "params.yaml").read_text().count("#")
    unchanged = {key for key in before if key not in {"data", "evaluate", "monitoring"}}
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}


def test_personal_columns_are_hashed_or_dropped_before_the_contract_is_written(
    project: Path,
) -> None:
    result = runner.invoke(app, [*ADOPT, "--hash", "term_months", "--drop", "note"])
    assert result.exit_code == 0, result.output
    pii = load_settings().data.pii
    assert (pii.hash, pii.drop) == (["term_months"], ["note"])
    columns = load(SCHEMA_FILE).RawRecord.to_schema().columns
    assert "note" not in columns
    # The contract describes the data as the pipeline sees it: the hash is text, not a number.
    assert "str" in str(columns["term_months"].dtype).lower()
    unknown = runner.invoke(app, [*ADOPT, "--drop", "nope"])
    assert unknown.exit_code == 1 and "--drop ['nope']: no such column" in unknown.output


def test_a_column_the_contract_cannot_describe_is_named_with_the_fix(project: Path) -> None:
    dated = loans().assign(signed=pd.date_range("2024-01-01", periods=400, freq="D"))
    dated.to_parquet("loans.parquet")
    args = ["adopt", "loans.parquet", "--target", "outcome", "--positive-class", "late"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1, refused.output
    assert "column 'signed' holds dates" in refused.output and "--drop" in refused.output
    dropped = runner.invoke(app, [*args, "--drop", "signed"])
    assert dropped.exit_code == 0, dropped.output
    assert Path(load_settings().data.raw).suffix == ".parquet"


def test_the_primary_metric_gets_a_limit_on_its_own_side(project: Path) -> None:
    """A lower-is-better primary metric gets a ceiling (evaluate.at_most), the no-skill one."""
    params = Path("params.yaml")
    params.write_text(
        params.read_text().replace("primary_metric: roc_auc", "primary_metric: log_loss")
    )
    assert runner.invoke(app, ADOPT).exit_code == 0
    evaluate = load_settings().evaluate
    rate = (loans()["outcome"] == "late").mean()
    entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert evaluate.at_most["log_loss"] == pytest.approx(entropy, abs=0.01)
