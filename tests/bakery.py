"""Bake the template: option combinations read from cookiecutter.json, and a bake helper.

Used by the tests, by `make setup` (to install the generated project's dependencies) and by
`make demo`, so there is one way to bake.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON = json.loads((ROOT / "cookiecutter.json").read_text())
CHOICE_OPTIONS: dict[str, list[str]] = {
    key: value
    for key, value in COOKIECUTTER_JSON.items()
    if isinstance(value, list) and not key.startswith("_")
}

# Pairs of option values that cannot be combined, with the reason. Empty today: every value of
# every option works with every other. A pair added here is skipped by the covering set and its
# rejection must be tested.
INVALID_PAIRS: dict[tuple[tuple[str, str], tuple[str, str]], str] = {}


def defaults() -> dict[str, str]:
    """The answers `cookiecutter --no-input` gives for each choice option."""
    return {key: values[0] for key, values in CHOICE_OPTIONS.items()}


def valid(combo: dict[str, str]) -> bool:
    items = list(combo.items())
    return not any(
        (a, b) in INVALID_PAIRS or (b, a) in INVALID_PAIRS
        for a, b in itertools.combinations(items, 2)
    )


def pairwise(options: dict[str, list[str]] = CHOICE_OPTIONS) -> list[dict[str, str]]:
    """A small set of combinations covering every valid pair of values of every two options.

    Greedy: start from the defaults, then repeatedly add the candidate combination that covers
    the most still-uncovered pairs. Deterministic, so test ids are stable.
    """
    names = list(options)
    uncovered = {
        ((a, va), (b, vb))
        for a, b in itertools.combinations(names, 2)
        for va in options[a]
        for vb in options[b]
        if valid({a: va, b: vb})
    }
    candidates = [
        dict(zip(names, values, strict=True)) for values in itertools.product(*options.values())
    ]
    candidates = [combo for combo in candidates if valid(combo)]

    def covers(combo: dict[str, str]) -> set:
        return {
            ((a, combo[a]), (b, combo[b])) for a, b in itertools.combinations(names, 2)
        } & uncovered

    chosen = [defaults()]
    uncovered -= covers(chosen[0])
    while uncovered:
        best = max(candidates, key=lambda combo: len(covers(combo)))
        chosen.append(best)
        uncovered -= covers(best)
    return chosen


def combo_id(combo: dict[str, str]) -> str:
    return "-".join(combo[name] for name in CHOICE_OPTIONS)


@dataclass(frozen=True)
class Preset:
    name: str
    answers: dict[str, str]


PRESETS = [
    Preset("defaults", {}),
    Preset("minimal", {"gpu_runner": "none", "dvc_remote": "local", "deploy": "local"}),
    Preset(
        "all-on",
        {
            "model": "torch",
            "gpu_runner": "cloud-aws",
            "dvc_remote": "s3",
            "mlflow_tracking": "server",
            "deploy": "kubernetes",
        },
    ),
]


def bake(output_dir: Path, **answers: str) -> Path:
    """Bake with cookiecutter's API (the CLI is exercised by the hook tests) and return the
    project directory."""
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    return Path(
        cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(output_dir))
    )


def tool_env(venv: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment with the venv's tools first on PATH and analytics off."""
    # Drop the outer make's state (`make test` runs us): a baked project's make must not
    # inherit its variables, jobserver or "Entering directory" lines.
    # Likewise pytest's: a baked project's own pytest must not believe it is an xdist worker.
    inherited = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in inherited and not key.startswith("PYTEST_")
    }
    bin_dir = venv / "bin" if venv else Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_AUTHOR_NAME", "template-tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "template-tests@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "template-tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "template-tests@example.com")
    env.update(extra or {})
    return env


def run(
    command: Sequence[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command, raising with its output (not just the exit code) when it fails."""
    result = subprocess.run(
        list(command), cwd=cwd, env=env or tool_env(), capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def files_under(root: Path, skip: Iterable[str] = (".git",)) -> set[str]:
    skipped = set(skip)
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not skipped & set(path.relative_to(root).parts)
    }
