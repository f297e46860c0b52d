"""Drift statistics against scipy's reference implementations, and the verdicts they give."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from contract_data import shifted
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.config import DriftSettings
from {{ cookiecutter.package }}.data import write_table
from {{ cookiecutter.package }}.monitoring.drift import SCORE, DriftError, drift, write_report
from {{ cookiecutter.package }}.monitoring.stats import (
    chi2_homogeneity,
    jensen_shannon,
    ks_pvalue,
    ks_wasserstein,
    psi,
)

KINDS = {"amount": "float", "visits": "int", "plan": "str", "region": "str"}

# Ties matter (the CDFs jump at runs of equal values): mix small integers with wide floats.
values = st.one_of(st.integers(-5, 5).map(float), st.floats(-1e6, 1e6, allow_subnormal=False))
samples = st.lists(values, min_size=2, max_size=120).map(lambda xs: np.sort(np.array(xs)))


@pytest.fixture(scope="module")
def limits(settings) -> DriftSettings:
    """The thresholds a generated project ships with (params.yaml `drift:`)."""
    return settings.drift


def frame(rng: np.random.Generator, rows: int, shift: float = 0.0, plan_p=None) -> pd.DataFrame:
    plans = np.array(["basic", "plus", "pro", None], dtype=object)
    return pd.DataFrame(
        {
            "amount": rng.normal(50 + shift * 10, 10, rows),
            "visits": rng.poisson(4, rows),
            "plan": plans[rng.choice(4, rows, p=plan_p or [0.4, 0.3, 0.2, 0.1])],
            "region": rng.choice(["north", "south", "east", "west"], rows),
        }
    )


@settings(max_examples=150, deadline=None)
@given(reference=samples, current=samples)
def test_ks_and_wasserstein_equal_scipy(reference: np.ndarray, current: np.ndarray) -> None:
    ks, distance = ks_wasserstein(reference, current)
    expected = ks_2samp(reference, current, method="asymp")
    assert ks == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
    assert ks_pvalue(ks, reference.size, current.size) == pytest.approx(
        expected.pvalue, rel=1e-9, abs=1e-12
    )
    scale = max(1.0, float(np.abs(np.concatenate([reference, current])).max()))
    assert distance == pytest.approx(
        wasserstein_distance(reference, current), rel=1e-9, abs=1e-12 * scale
    )


def test_ks_pvalue_of_large_samples_stays_close_to_scipy() -> None:
    # Above an effective size of 10,000 the limiting distribution is used (see ks_pvalue).
    rng = np.random.default_rng(3)
    reference, current = np.sort(rng.normal(0, 1, 30_000)), np.sort(rng.normal(0.03, 1, 30_000))
    ks, _ = ks_wasserstein(reference, current)
    expected = ks_2samp(reference, current, method="asymp").pvalue
    assert 1e-8 < expected < 0.5
    assert ks_pvalue(ks, reference.size, current.size) == pytest.approx(expected, rel=0.03)


def count_pairs(k: int) -> st.SearchStrategy:
    counts = st.lists(st.integers(0, 60), min_size=k, max_size=k)
    return st.tuples(counts, counts)


@settings(max_examples=150, deadline=None)
@given(pair=st.integers(1, 8).flatmap(count_pairs))
def test_chi_square_and_jensen_shannon_equal_scipy(pair: tuple[list[int], list[int]]) -> None:
    reference, current = (np.array(c) for c in pair)
    if reference.sum() == 0 or current.sum() == 0:
        return
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    expected_p = chi2_contingency(table, correction=False).pvalue if table.shape[1] > 1 else 1.0
    assert chi2_homogeneity(reference, current) == pytest.approx(expected_p, rel=1e-9, abs=1e-12)
    assert jensen_shannon(reference, current) == pytest.approx(
        jensenshannon(reference, current), rel=1e-9, abs=1e-7
    )


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=5, max_size=60),
    current=st.lists(st.sampled_from(["a", "b", "d", None]), min_size=5, max_size=60),
)
def test_categorical_column_counts_missing_and_unseen_as_categories(reference, current) -> None:
    ref, cur = pd.Series(reference, dtype=object), pd.Series(current, dtype=object)
    result = drift(ref.to_frame("plan"), cur.to_frame("plan"), {"plan": "str"}, small()).features[0]
    table = pd.concat(
        [ref.fillna("<missing>").value_counts(), cur.fillna("<missing>").value_counts()], axis=1
    ).fillna(0)
    ref_counts, cur_counts = table.iloc[:, 0].to_numpy(), table.iloc[:, 1].to_numpy()
    expected_p = (
        chi2_contingency(table.T.to_numpy(), correction=False).pvalue if len(table) > 1 else 1.0
    )
    assert result.statistics["chi2_pvalue"] == pytest.approx(expected_p, rel=1e-9, abs=1e-12)
    assert result.statistics["jensen_shannon"] == pytest.approx(
        jensenshannon(ref_counts, cur_counts), rel=1e-9, abs=1e-7
    )
    assert result.null_share == (ref.isna().mean(), cur.isna().mean())


def test_psi_of_a_known_shift() -> None:
    # Equal samples: nothing beyond the noise, and PSI never goes below 0.
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0
    # Shares smoothed by half a count, 50.5 / 101 each against 80.5 / 101 and 20.5 / 101:
    # 0.2970 ln(0.7970 / 0.5) + 0.2970 ln(0.5 / 0.2030) = 0.4063, less the noise of two samples
    # of 100 over 2 bins, (2 - 1) * (1/100 + 1/100) = 0.02.
    assert psi(np.array([50, 50]), np.array([80, 20])) == pytest.approx(0.3863, abs=1e-4)
    # On large samples both corrections fade: (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5)
    # ln(0.2 / 0.5) = 0.4159 (0.4158 smoothed), less 0.0002 of noise.
    assert psi(np.array([5000, 5000]), np.array([8000, 2000])) == pytest.approx(0.4156, abs=1e-4)
    # An empty bin adds a bounded term instead of making PSI infinite.
    assert np.isfinite(psi(np.array([100, 0]), np.array([50, 50])))


def small(**overrides) -> DriftSettings:
    base = dict(
        numeric_stat="wasserstein",
        categorical_stat="jensen_shannon",
        wasserstein=0.1,
        jensen_shannon=0.1,
        psi=0.2,
        ks_pvalue=0.01,
        chi2_pvalue=0.01,
        null_share=0.1,
        bins=10,
        min_rows=5,
        features={},
    )
    return DriftSettings.model_validate(base | overrides)


def test_two_samples_of_one_distribution_are_not_flagged(limits: DriftSettings) -> None:
    # The module's bound: a column is flagged with probability at most ks_pvalue + chi2_pvalue
    # (2 %). 200 seeded pairs x 4 columns at twice min_rows, where sampling noise is largest:
    # the effect sizes alone cross their thresholds about 15 times and the p-values alone about
    # 9 times; both together must stay under half the bound.
    rows = limits.min_rows * 2
    flagged = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        report = drift(frame(rng, rows), frame(rng, rows), KINDS, limits)
        flagged += [(seed, name) for name in report.drifted_columns]
    assert len(flagged) <= 200 * len(KINDS) * 0.01, flagged


def test_a_known_shift_is_flagged_and_named(limits: DriftSettings, tmp_path) -> None:
    rng = np.random.default_rng(7)
    reference = frame(rng, 5000)
    current = frame(rng, 5000, shift=0.5, plan_p=[0.2, 0.3, 0.4, 0.1])
    report = drift(reference, current, KINDS, limits)
    assert report.drifted
    assert sorted(report.drifted_columns) == ["amount", "plan"]
    by_name = {result.name: result for result in report.features}
    assert by_name["amount"].decided_by == "wasserstein"
    assert by_name["amount"].statistics["wasserstein"] == pytest.approx(0.5, abs=0.05)
    assert by_name["plan"].decided_by == "jensen_shannon"

    write_report(report, tmp_path / "drift.json", tmp_path / "drift.md")
    saved = json.loads((tmp_path / "drift.json").read_text())
    assert saved["drifted"] is True and sorted(saved["drifted_columns"]) == ["amount", "plan"]
    table = (tmp_path / "drift.md").read_text().splitlines()
    assert table[0] == "## Data drift"
    rows = [line for line in table if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows[:2]] == ["amount", "plan"]  # drifted first
    assert "| no |" in rows[2] and "| no |" in rows[3]
    assert not list(tmp_path.glob("*.tmp"))


def test_p_values_alone_do_not_decide_on_large_samples(limits: DriftSettings) -> None:
    rng = np.random.default_rng(11)
    reference, current = frame(rng, 200_000), frame(rng, 200_000, shift=0.04)
    result = drift(reference, current, KINDS, limits).features[0]
    assert result.statistics["ks_pvalue"] < limits.ks_pvalue  # a test alone would flag it
    assert not result.drifted  # 0.04 standard deviations is below the effect-size threshold


def test_per_column_overrides_and_psi_as_the_deciding_statistic() -> None:
    rng = np.random.default_rng(5)
    reference, current = frame(rng, 3000), frame(rng, 3000, shift=0.3)
    assert drift(reference, current, KINDS, small()).drifted_columns == ["amount"]
    relaxed = small(features={"amount": {"wasserstein": 0.5}})
    assert drift(reference, current, KINDS, relaxed).drifted_columns == []
    by_psi = drift(reference, current, KINDS, small(numeric_stat="psi", psi=0.05))
    assert by_psi.features[0].decided_by == "psi" and by_psi.drifted_columns == ["amount"]


def test_prediction_score_drift_is_judged_like_a_numeric_column() -> None:
    rng = np.random.default_rng(2)
    reference, current = frame(rng, 2000), frame(rng, 2000)
    scores = (rng.beta(2, 5, 2000), rng.beta(5, 2, 2000))
    report = drift(reference, current, KINDS, small(), scores=scores)
    assert report.drifted_columns == [SCORE]
    assert report.score is not None and report.score.statistics["ks_pvalue"] < 1e-10


def test_constant_columns() -> None:
    same = pd.DataFrame({"x": [3.0] * 50, "c": ["a"] * 50})
    report = drift(same, same, {"x": "float", "c": "str"}, small())
    assert not report.drifted
    x, c = report.features
    assert x.statistics["ks"] == 0 and x.statistics["wasserstein"] == 0
    assert x.statistics["ks_pvalue"] == 1 and c.statistics["chi2_pvalue"] == 1
    moved = pd.DataFrame({"x": [4.0] * 50, "c": ["b"] * 50})
    assert drift(same, moved, {"x": "float", "c": "str"}, small()).drifted_columns == ["x", "c"]


def test_all_missing_columns() -> None:
    empty = pd.DataFrame({"x": [np.nan] * 40, "c": pd.Series([None] * 40, dtype=object)})
    assert not drift(empty, empty, {"x": "float", "c": "str"}, small()).drifted
    present = pd.DataFrame({"x": np.arange(40.0), "c": ["a"] * 40})
    report = drift(present, empty, {"x": "float", "c": "str"}, small())
    x, c = report.features
    assert x.drifted and x.decided_by == "null_share" and x.statistics["wasserstein"] is None
    assert c.drifted and c.null_share == (0.0, 1.0)
    json.dumps(report.to_dict(), allow_nan=False)  # drift.json stays strict JSON


def test_an_unseen_category_is_drift() -> None:
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"c": rng.choice(["a", "b"], 1000)})
    current = pd.DataFrame({"c": rng.choice(["a", "b", "new"], 1000)})
    result = drift(reference, current, {"c": "str"}, small()).features[0]
    assert result.drifted and np.isfinite(result.statistics["psi"])


def test_bad_inputs_get_one_clear_error() -> None:
    rows = pd.DataFrame({"x": np.arange(10.0)})
    with pytest.raises(DriftError, match=r"current sample has 3 rows.*min_rows"):
        drift(rows, rows.head(3), {"x": "float"}, small(min_rows=5))
    with pytest.raises(DriftError, match=r"no column\(s\) \['y'\]"):
        drift(rows, rows, {"x": "float", "y": "float"}, small())
    with pytest.raises(DriftError, match=r"drift.features .* \['typo'\]"):
        drift(rows, rows, {"x": "float"}, small(features={"typo": {"psi": 0.1}}))
    with pytest.raises(ValueError, match="ks_pvalue"):
        small(ks_pvalue=1.5)


def test_cli_exit_code_says_drift_or_not(tmp_path: Path, monkeypatch, splits, trained) -> None:
    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    train, test = splits
    # Recent records: every column moved as far as the contract lets it (contract_data.py).
    moved, shifted_columns = shifted(train, train)
    for name, table in [
        ("reference", train),
        ("same", train.sample(frac=1.0, random_state=1)),
        ("shifted", moved),
        ("tiny", test.head(20)),
    ]:
        write_table(table, Path(f"{name}.parquet"))

    def run(current: str, *more: str):
        arguments = ["drift", "--reference", "reference.parquet", "--current", current, *more]
        return CliRunner().invoke(app, arguments)

    calm = run("same.parquet")
    assert calm.exit_code == 0, calm.output
    assert json.loads(Path("reports/drift.json").read_text())["drifted"] is False

    moved = run("shifted.parquet", "--output", "out/drift.json")
    assert moved.exit_code == 3, moved.output
    drifted = json.loads(Path("out/drift.json").read_text())["drifted_columns"]
    assert set(shifted_columns) <= set(drifted)
    assert f"`{shifted_columns[0]}`" in Path("out/drift.md").read_text().split("| no |")[0]

    trained.save(Path("model"))
    scored = run("shifted.parquet", "--scores", "--model-dir", "model")
    assert scored.exit_code == 3, scored.output
    score = json.loads(Path("reports/drift.json").read_text())["score"]
    assert score["name"] == SCORE and score["drifted"]  # the model sees the moved records

    tiny = run("tiny.parquet")
    assert tiny.exit_code == 1 and "min_rows" in tiny.output and "Traceback" not in tiny.output
