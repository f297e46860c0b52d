"""Structure of every baked combination: exact file sets, rendered text, parseable, ruff clean."""

from __future__ import annotations

import ast
import configparser
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from bakery import files_under, tool_env
from conftest import bake_ids

ALWAYS = {
    ".cookiecutter.json",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvcignore",
    ".github/actions/setup/action.yml",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".github/workflows/train.yml",
    ".gitignore",
    "Makefile",
    "bentofile.yaml",
    "README.md",
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/batch.py",
    "src/{package}/bento.py",
    "src/{package}/cli.py",
    "src/{package}/config.py",
    "src/{package}/data.py",
    "src/{package}/evaluate.py",
    "src/{package}/explain.py",
    "src/{package}/features.py",
    "src/{package}/gate.py",
    "src/{package}/model.py",
    "src/{package}/model_source.py",
    "src/{package}/records.py",
    "src/{package}/registry.py",
    "src/{package}/report.py",
    "src/{package}/schema.py",
    "src/{package}/service.py",
    "src/{package}/train.py",
    "src/{package}/validate.py",
    "tests/bad_records.py",
    "tests/conftest.py",
    "tests/strategies.py",
    "tests/test_batch.py",
    "tests/test_cli.py",
    "tests/test_data.py",
    "tests/test_model.py",
    "tests/test_properties.py",
    "tests/test_records.py",
    "tests/test_report.py",
    "tests/test_schema.py",
    "tests/test_service.py",
}
# (option, value) -> files that exist exactly when the option has that value.
ONLY_WHEN = {
    ("model", "torch"): {"src/{package}/torch_model.py", "tests/test_torch_model.py"},
}
UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|%\}")


def expected_files(answers: dict[str, str], package: str) -> set[str]:
    names = set(ALWAYS)
    for (option, value), paths in ONLY_WHEN.items():
        if answers.get(option, _default(option)) == value:
            names |= paths
    return {name.format(package=package) for name in names}


def _default(option: str) -> str:
    from bakery import defaults

    return defaults()[option]


def package_of(project: Path) -> str:
    return json.loads((project / ".cookiecutter.json").read_text())["package"]


@pytest.fixture(params=bake_ids())
def baked(request: pytest.FixtureRequest, bakes) -> tuple[dict[str, str], Path]:
    return bakes[request.param]


def test_exact_file_set(baked) -> None:
    answers, project = baked
    assert files_under(project) == expected_files(answers, package_of(project))
    assert (project / ".git").is_dir(), "post-gen hook starts a git repository"


def test_nothing_left_unrendered(baked) -> None:
    _, project = baked
    leftovers = {
        name: match.group(0)
        for name in files_under(project)
        if (match := UNRENDERED.search((project / name).read_text()))
    }
    assert leftovers == {}


def test_every_python_toml_yaml_json_file_parses(baked) -> None:
    _, project = baked
    for name in files_under(project):
        text = (project / name).read_text()
        if name.endswith(".py"):
            ast.parse(text, filename=name)
        elif name.endswith(".toml"):
            tomllib.loads(text)
        elif name.endswith((".yml", ".yaml")):
            list(yaml.safe_load_all(text))
        elif name.endswith(".json"):
            json.loads(text)
    configparser.ConfigParser().read_string((project / ".dvc" / "config").read_text())


def test_ruff_clean(baked) -> None:
    _, project = baked
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = subprocess.run(
            command, cwd=project, capture_output=True, text=True, env=tool_env()
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_options_reach_the_files_that_use_them(baked) -> None:
    answers, project = baked
    params = yaml.safe_load((project / "params.yaml").read_text())
    recorded = json.loads((project / ".cookiecutter.json").read_text())
    for option, value in answers.items():
        assert recorded[option] == value
    assert params["train"]["model"] == recorded["model"]
    remote = (project / ".dvc" / "config").read_text()
    scheme = {"local": "../../", "s3": "s3://", "gcs": "gs://", "azure": "azure://"}
    assert f"url = {scheme[recorded['dvc_remote']]}" in remote
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    dvc = next(dep for dep in dependencies if dep.startswith("dvc"))
    assert (f"dvc[{recorded['dvc_remote']}]" in dvc) == (recorded["dvc_remote"] != "local")
    tracking = "sqlite:///mlflow.db" if recorded["mlflow_tracking"] == "local" else "127.0.0.1:5000"
    assert tracking in (project / "src" / recorded["package"] / "registry.py").read_text()
    assert ("mlflow-server:" in (project / "Makefile").read_text()) == (
        recorded["mlflow_tracking"] == "server"
    )
