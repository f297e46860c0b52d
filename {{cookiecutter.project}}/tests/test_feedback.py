"""`feedback`: labels files checked against the contract's target, joined by request id to the
samples the real sampler wrote, every label accounted for, nothing written on an error."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from contract_data import as_records
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.config import load_settings
from {{ cookiecutter.package }}.contract.validation import FEATURES
from {{ cookiecutter.package }}.data import write_table
from {{ cookiecutter.package }}.monitoring.feedback import (
    LabelsError,
    ingest,
    problems,
    read_labelled,
    target_values,
)
from {{ cookiecutter.package }}.serving.sampling import Sampler

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PREDICTED = NOW - timedelta(days=3)
# The label column and its two values, as params.yaml and the contract name them.
DATA = load_settings(ROOT / "params.yaml").data
TARGET, POSITIVE = DATA.target, str(DATA.positive_class)
CLASSES = target_values(TARGET) or [POSITIVE, f"not {POSITIVE}"]
NEGATIVE = next(value for value in CLASSES if value != POSITIVE)
# Label values no contract target allows (a missing label among them).
WRONG = [value for value in ["maybe", "unknown", "?"] if value not in CLASSES] + [None]


def labels_frame(ids: list[str], values: list, observed: datetime = NOW) -> pd.DataFrame:
    return pd.DataFrame(
        {"request_id": ids, TARGET: values, "observed_at": [observed.isoformat()] * len(ids)}
    )


# --- every problem named once, nothing written -----------------------------------------------

KINDS = {
    "missing ids": ("request_id", "not_nullable"),
    "duplicate ids": ("request_id", "unique"),
    "wrong labels": (TARGET, "isin"),
    "unknown columns": ("note", "extra column"),
}


@st.composite
def broken_labels(draw) -> tuple[pd.DataFrame, set[str], str]:
    """A valid labels frame with a chosen set of problems planted on distinct rows."""
    rows = draw(st.integers(min_value=6, max_value=40))
    ids = [f"req-{draw(st.uuids()).hex[:12]}-{row}" for row in range(rows)]
    values = draw(st.lists(st.sampled_from([NEGATIVE, POSITIVE]), min_size=rows, max_size=rows))
    frame = labels_frame(ids, values)
    kinds = draw(st.sets(st.sampled_from(sorted(KINDS)), min_size=1))
    victims = draw(st.permutations(range(rows)))
    if "missing ids" in kinds:
        frame.loc[victims[0], "request_id"] = draw(st.sampled_from([None, "", "  "]))
    if "duplicate ids" in kinds:
        frame.loc[victims[1], "request_id"] = frame.loc[victims[2], "request_id"]
    if "wrong labels" in kinds:
        frame.loc[victims[3], TARGET] = draw(st.sampled_from(WRONG))
    if "unknown columns" in kinds:
        frame["note"] = "from the CRM"
    return frame, kinds, draw(st.sampled_from([".csv", ".parquet"]))


@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_labels())
def test_a_broken_labels_file_gets_one_message_per_problem_and_writes_nothing(
    case, settings
) -> None:
    frame, kinds, suffix = case
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_table(frame, root / f"labels{suffix}")
        monitoring = settings.monitoring.model_copy(
            update={"sink": str(root / "samples"), "labels": str(root / "store")}
        )
        with pytest.raises(LabelsError) as refused:
            ingest(root / f"labels{suffix}", settings.data, monitoring, now=NOW)
        found = [(problem.column, problem.check) for problem in refused.value.problems]
        assert sorted(found) == sorted(KINDS[kind] for kind in kinds)
        assert sorted(path.name for path in root.iterdir()) == [f"labels{suffix}"]


def test_other_problems_are_named_too(settings) -> None:
    frame = labels_frame(["a", "b", "c"], [NEGATIVE, POSITIVE, NEGATIVE]).drop(columns=[TARGET])
    frame["observed_at"] = ["2026-03-01T10:00:00Z", "last week", "2031-01-01T00:00:00Z"]
    found = {(p.column, p.check): p for p in problems(frame, settings.data, NOW)}
    assert set(found) == {
        (TARGET, "missing column"),
        ("observed_at", "datetime"),
        ("observed_at", "not in the future"),
    }
    assert found[("observed_at", "datetime")].rows == [1]
    assert found[("observed_at", "not in the future")].rows == [2]
    empty = frame.iloc[0:0].assign(**{TARGET: []})
    assert problems(empty, settings.data, NOW)[0].column == "(file)"


# --- the join: every label accounted for ---------------------------------------------------------


@pytest.fixture()
def sampled(tmp_path: Path, trained, splits) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """Holdout records served three days before NOW, each with an id, as the service keeps them."""
    rows = splits[1].head(300).reset_index(drop=True)
    scores = trained.predict_proba(rows[FEATURES])[:, 1]
    sampler = Sampler(tmp_path / "samples", 1.0, flush_seconds=3600, clock=PREDICTED.timestamp)
    sampler.record(as_records(rows), scores, "4", [f"r{i}" for i in range(len(rows))])
    sampler.close()
    return tmp_path, rows, scores


def test_labels_join_their_predictions_and_the_rest_is_counted(sampled, settings) -> None:
    root, rows, scores = sampled
    # Labels normally come within a day here: one observed three days on is late.
    quality = settings.monitoring.quality.model_copy(update={"label_delay_hours": 24})
    monitoring = settings.monitoring.model_copy(
        update={"sink": str(root / "samples"), "labels": str(root / "store"), "quality": quality}
    )
    ids = [f"r{i}" for i in range(200)] + ["never-served", "typo-r1"]
    values = [*rows[TARGET][:200], POSITIVE, NEGATIVE]
    first = labels_frame(ids, values, PREDICTED + timedelta(hours=2))
    first.loc[0, "observed_at"] = NOW.isoformat()
    write_table(first, root / "first.csv")
    fed = ingest(root / "first.csv", settings.data, monitoring, now=NOW)
    assert (fed.rows, fed.matched, fed.unmatched, fed.late, fed.relabelled) == (202, 200, 2, 1, 0)
    assert fed.samples == 300
    unmatched = pd.read_parquet(fed.unmatched_file)
    assert unmatched["request_id"].tolist() == ["never-served", "typo-r1"]
    labelled = read_labelled(str(root / "store"))
    assert len(labelled) == 200
    by_id = labelled.set_index("request_id")
    assert by_id.loc["r7", "score"] == pytest.approx(scores[7])
    assert by_id.loc["r7", "label"] == int(str(rows.loc[7, TARGET]) == POSITIVE)
    assert set(by_id["model_version"]) == {"4"}
    # A second file relabels r5 (the newest observation wins) and adds r250.
    second = labels_frame(["r5", "r250"], [POSITIVE, NEGATIVE], PREDICTED + timedelta(hours=5))
    write_table(second, root / "second.parquet")
    fed = ingest(root / "second.parquet", settings.data, monitoring, now=NOW)
    assert (fed.matched, fed.relabelled) == (2, 1)
    labelled = read_labelled(str(root / "store")).set_index("request_id")
    assert len(labelled) == 201 and labelled.loc["r5", "label"] == 1


# --- the command, a file or an inbox -------------------------------------------------------------


@pytest.fixture()
def project(sampled, monkeypatch) -> Path:
    root, _, _ = sampled
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitoring"] |= {"sink": "samples", "labels": "store", "inbox": "inbox"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    return root


def test_the_command_names_each_problem_once_then_feeds_a_good_file(project, splits) -> None:
    runner = CliRunner()
    bad = labels_frame(["r1", "r1", "r2"], [NEGATIVE, WRONG[0], POSITIVE]).assign(note="x")
    write_table(bad, project / "bad.csv")
    refused = runner.invoke(app, ["feedback", "--labels", "bad.csv"])
    assert refused.exit_code == 1
    lines = refused.output.strip().splitlines()
    assert lines[0].startswith("ERROR: bad.csv: 3 problem(s)") and len(lines) == 4, lines
    assert not (project / "store").exists() and not (project / "reports").exists()
    good = labels_frame([f"r{i}" for i in range(300)], list(splits[1][TARGET][:300]))
    write_table(good, project / "good.csv")
    fed = runner.invoke(app, ["feedback", "--labels", "good.csv"])
    assert fed.exit_code == 0, fed.output
    assert "300 joined to their prediction" in fed.output and "model quality:" in fed.output
    record = json.loads((project / "reports/feedback.json").read_text())
    assert record["feeds"][0]["matched"] == 300
    assert json.loads((project / "reports/quality.json").read_text())["labels"] == 300


def test_the_inbox_is_drained_and_a_bad_file_set_aside(project) -> None:
    inbox = project / "inbox"
    inbox.mkdir()
    write_table(labels_frame(["r1", "r2"], [NEGATIVE, POSITIVE]), inbox / "a.csv")
    write_table(labels_frame(["r3", "r3"], [NEGATIVE, POSITIVE]), inbox / "b.csv")
    (inbox / "c.parquet").write_text("not parquet")
    result = CliRunner().invoke(app, ["feedback"])
    assert result.exit_code == 1, result.output
    assert "1 fed, 2 refused" in result.output
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["a.csv"]
    rejected = sorted(p.name for p in (inbox / "rejected").iterdir())
    assert rejected == ["b.csv", "b.csv.problems.txt", "c.parquet", "c.parquet.problems.txt"]
    assert (
        "request_id: expected each id once" in (inbox / "rejected/b.csv.problems.txt").read_text()
    )
    assert sorted(p.name for p in inbox.iterdir()) == ["done", "rejected"]
