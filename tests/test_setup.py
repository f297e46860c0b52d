"""The path a user takes: `make setup` with no overrides, in a freshly baked project."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from bakery import bake, run, tool_env

VENV = Path(sys.executable).parent.parent


@pytest.mark.slow
@pytest.mark.xdist_group("fresh-setup")
def test_make_setup_builds_a_working_venv_from_scratch(tmp_path: Path) -> None:
    """What a user runs: `make setup` with no overrides creates .venv from pyproject.toml."""
    project = bake(tmp_path)
    env = {k: v for k, v in tool_env().items() if k != "VIRTUAL_ENV"}
    env["PATH"] = env["PATH"].replace(f"{VENV / 'bin'}:", "")
    run(["make", "setup"], cwd=project, env=env)
    venv = project / ".venv" / "bin"
    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    assert "adopt" in run([str(venv / package), "--help"], cwd=project, env=env).stdout
    collected = run([str(venv / "python"), "-m", "pytest", "--co", "-q"], cwd=project, env=env)
    assert "test_holdout_metric_floor" in collected.stdout
    run(["make", "lint"], cwd=project, env=env)
