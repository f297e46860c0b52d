"""Every path once: the files dvc.yaml, the Makefile, the workflows and bentofile.yaml name are
the ones config/paths.py (or params.yaml) names, so moving a file is a one-line change that the
other places follow or fail here."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package }} import config

ROOT = Path(__file__).resolve().parents[1]
# Where the project's files are named outside the package.
SOURCES = [
    "dvc.yaml",
    "Makefile",
    "*.mk",
    "bentofile.yaml",
    ".github/workflows/*.yml",
    ".github/actions/*/action.yml",
]
# A path into one of the project's working folders, or one of its top-level files.
PATH = re.compile(
    r"(?<![\w/.$-])((?:data|reports|models|build|deploy|monitoring)/[\w.{},@*-]+(?:/[\w.{},@*-]+)*"
    r"|metrics\.json|report\.md)"
)


def expand(name: str) -> list[str]:
    """``reports/drift.{json,md}`` -> both files; other text as it is."""
    parts = re.split(r"\{([^{}]*,[^{}]*)\}", name)
    options = [part.split(",") if index % 2 else [part] for index, part in enumerate(parts)]
    return ["".join(choice) for choice in itertools.product(*options)]


def config_paths() -> set[str]:
    return {str(value) for value in vars(config).values() if isinstance(value, Path)}


def params_paths() -> set[str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return {params["data"]["raw"], params["monitoring"]["sink"]}


def known(name: str, named: set[str]) -> bool:
    if "*" in name:  # a glob: the folder it searches must be named
        name = name.split("*")[0]
        return any(path.startswith(name) for path in named)
    return (
        name in named
        or any(name.startswith(f"{folder}/") for folder in named)
        or (ROOT / name).exists()
    )


def named_paths(source: Path) -> set[str]:
    found = PATH.findall(source.read_text())
    return {path.rstrip("/.,") for name in found for path in expand(name)}


@pytest.mark.parametrize(
    "source",
    sorted({path for pattern in SOURCES for path in ROOT.glob(pattern)}),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_files_outside_the_package_name_only_paths_config_names(source: Path) -> None:
    named = config_paths() | params_paths()
    unknown = sorted(path for path in named_paths(source) if not known(path, named))
    assert unknown == [], f"name these in config/paths.py or params.yaml, then use them: {unknown}"


def test_the_check_sees_an_unknown_path(tmp_path: Path) -> None:
    """Guards the guard: a path config does not name is reported, a known one is not."""
    source = tmp_path / "Makefile"
    source.write_text("OUT := reports/elsewhere.json\nIN := data/processed/train.parquet\n")
    named = config_paths() | params_paths()
    found = named_paths(source)
    assert found == {"reports/elsewhere.json", "data/processed/train.parquet"}
    assert [path for path in found if not known(path, named)] == ["reports/elsewhere.json"]


def test_the_service_is_named_once() -> None:
    """bentofile.yaml names config.SERVICE; the Makefile reads it from there."""
    assert yaml.safe_load((ROOT / "bentofile.yaml").read_text())["service"] == config.SERVICE
    makefile = (ROOT / "Makefile").read_text()
    assert config.SERVICE not in makefile and "$(SERVICE)" in makefile


def test_the_makefile_reads_the_raw_file_from_params() -> None:
    """`make data` tracks whatever params.yaml data.raw names, not a copy of it."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^RAW := \$\(shell .*params\.yaml\)$", makefile, re.MULTILINE)
    assert "data/raw/" not in makefile


def test_a_fresh_clone_pulls_the_raw_data(tmp_path: Path, settings) -> None:
    """DVC collects .dvc files only outside folders it takes for git-ignored, and its matcher
    takes `/data/raw/*` for the folder itself: the raw data's .dvc file would then be invisible,
    `dvc pull` would leave the data out and every stage would look stale. With the project's
    .gitignore, git ignores the raw file and DVC still sees its .dvc file."""
    from dvc.repo import Repo

    (tmp_path / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    raw = tmp_path / settings.data.raw
    raw.parent.mkdir(parents=True)
    raw.write_text("id,label\n1,0\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*dvc, "add", "-q", settings.data.raw], cwd=tmp_path, check=True)
    ignored = subprocess.run(["git", "check-ignore", "-q", settings.data.raw], cwd=tmp_path)
    assert ignored.returncode == 0  # the data itself is never committed
    with Repo(str(tmp_path)) as repo:
        tracked = {Path(stage.path) for stage in repo.index.stages}
    assert raw.with_name(f"{raw.name}.dvc") in tracked
