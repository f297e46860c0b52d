"""A release: what train.yml's run of a merged commit leaves for its deploy, and how the deploy
takes it up again without retraining.

A pull request's training is a preview. The run of train.yml on the merged commit (a push to the
default branch, or the merge queue) reproduces the pipeline there; what it made is the release:

- the changes `dvc repro` made to tracked files (dvc.lock, metrics.json, reports/*.json, the
  plots' CSVs), as a patch, and the registry record of the model it registered
  (``record``); the workflow keeps both in the actions cache under ``release-<sha>``;
- the outputs themselves, in the DVC remote (with the local remote: ``.dvc/cache``, kept in the
  actions cache of the default branch).

deploy.yml applies the patch as a *release commit* on the merged one (``apply``), with the same
author, date and message in every job, so every job makes the same commit: `dvc pull` fetches
exactly the recorded hashes, `dvc status` proves the outputs were built from this commit's
inputs, and the champion tag points at a commit whose dvc.lock and metrics.json are the
champion's. Nothing here retrains: a missing output stops the deploy, named.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.config import (
    CANARY_REPORT,
    PROMOTION_RECORD,
    REGISTRY_RECORD,
    RELEASE_PATCH,
    RELEASE_RECORD,
    Settings,
)
from {{ cookiecutter.package }}.registry import champion, history

# Every job that makes the release commit makes the same one: same tree, parent, names, dates.
AUTHOR = {"GIT_AUTHOR_NAME": "release", "GIT_AUTHOR_EMAIL": "release@localhost"}
COMMITTER = {"GIT_COMMITTER_NAME": "release", "GIT_COMMITTER_EMAIL": "release@localhost"}
RERUN = (
    "run train.yml on this commit (Actions > train > Run workflow, on the default branch), "
    "then re-run this deploy"
)


def record(settings: Settings) -> Path:
    """After the pipeline ran on a merged commit: the patch of what it changed, and the model."""
    commit, _ = history.head()
    if not REGISTRY_RECORD.exists():
        raise FileNotFoundError(f"{REGISTRY_RECORD} not found: run `make repro` first")
    registry = json.loads(REGISTRY_RECORD.read_text())
    _git("add", "--all")
    patch = _git("diff", "--cached", "--binary", "HEAD").stdout
    RELEASE_PATCH.parent.mkdir(parents=True, exist_ok=True)
    RELEASE_PATCH.write_text(patch)
    release = {
        "commit": commit,
        "version": release_version(settings, registry),
        "model_name": registry["model_name"],
        "run_id": registry["run_id"],
        "registry": registry,
        "workflow_run": champion.workflow_run(),
    }
    RELEASE_RECORD.write_text(json.dumps(release, indent=2) + "\n")
    return RELEASE_RECORD


def release_version(settings: Settings, registry: dict[str, Any]) -> str:
    """The registered version where the registry outlives the job (a tracking server). A local
    store is new in every CI job, so its version would be 1 every time: the run id names it."""
    if champion.local_store(settings):
        return f"run-{registry['run_id'][:12]}"
    return str(registry["version"])


def load() -> dict[str, Any]:
    """The release record of this commit, or why there is none and how to get one."""
    commit, _ = history.head()
    if not RELEASE_RECORD.exists():
        raise FileNotFoundError(
            f"no release record of {commit[:12]} ({RELEASE_RECORD}, kept in the actions cache as "
            f"release-{commit}): train.yml's run on this commit did not finish, or its cache "
            f"entry expired (7 days unused); deploys never retrain: {RERUN}"
        )
    release = json.loads(RELEASE_RECORD.read_text())
    if release["commit"] not in {commit, _parent(commit)}:
        raise ValueError(
            f"{RELEASE_RECORD} records commit {release['commit'][:12]}, not {commit[:12]}: "
            "it belongs to another commit"
        )
    return release


def apply(pull: bool) -> list[str]:
    """The release commit on the merged commit; with ``pull`` its outputs, checked against it."""
    release = load()
    lines = [f"release of {release['commit'][:12]}: {release['model_name']} {release['version']}"]
    if history.head()[0] == release["commit"] and RELEASE_PATCH.read_text():
        _git("apply", "--index", str(RELEASE_PATCH))
        date = _git("log", "-1", "--format=%cI").stdout.strip()
        dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        message = f"Release record of {release['commit']}"
        _git("commit", "-q", "--no-verify", "-m", message, env=AUTHOR | COMMITTER | dates)
    lines.append(f"release commit {history.head()[0][:12]}")
    if pull:
        lines.append(pull_outputs())
    return lines


def pull_outputs() -> str:
    """Every output the release commit names, from the DVC remote; stop when one is missing or
    was not built from this commit's inputs."""
    pulled = subprocess.run(["dvc", "pull", "--quiet"], capture_output=True, text=True)
    if pulled.returncode != 0:
        missing = sorted(_dvc_json("status", "--cloud"))
        raise FileNotFoundError(
            f"the DVC remote lacks outputs of this release ({', '.join(missing) or pulled.stderr})"
            f": deploys never retrain: {RERUN}"
        )
    # The model and the holdout split come from `train` and the stages before it; the later
    # stages' outputs are records the release commit holds (their PNG plots are not versioned).
    stale = _dvc_json("status", "--with-deps", "train")
    if stale:
        raise ValueError(
            f"outputs differ from what this commit's inputs build (dvc status: "
            f"{', '.join(sorted(stale))}): the release record is not this commit's; {RERUN}"
        )
    return "outputs pulled; dvc status: up to date with this commit's inputs"


def decision() -> str:
    """After `promote --decide-only`: would the release's model be promoted, and why. In GitHub
    Actions also the step output ``promote`` and a line of the job summary."""
    result = json.loads(PROMOTION_RECORD.read_text())
    wins = bool(result["evidence"]["decision"]["promote"])
    line = ("roll out: " if wins else "not rolled out: ") + result["reason"]
    _github("GITHUB_OUTPUT", f"promote={str(wins).lower()}")
    _github("GITHUB_STEP_SUMMARY", f"**Decision before any traffic moves**: {line}")
    return line


def promote(settings: Settings, approved_by: str) -> dict[str, Any]:
    """After the rollout passed: the decision made before it, executed (champion.promote)."""
    release = load()
    evidence = {"release": release, "decision": json.loads(PROMOTION_RECORD.read_text())}
    if CANARY_REPORT.exists():
        evidence["canary"] = json.loads(CANARY_REPORT.read_text())
    if not evidence["decision"]["evidence"]["decision"]["promote"]:
        raise ValueError(f"{PROMOTION_RECORD} says the release stays challenger: not promoted")
    return champion.promote(
        settings, release["version"], approved_by=approved_by, evidence=evidence
    )


def _parent(commit: str) -> str:
    return _git("rev-parse", f"{commit}^").stdout.strip()


def _dvc_json(*args: str) -> dict[str, Any]:
    result = subprocess.run(["dvc", *args, "--json"], capture_output=True, text=True)
    try:
        return json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return {"dvc status failed": result.stderr.strip()}


def _github(variable: str, line: str) -> None:
    if path := os.environ.get(variable):
        with open(path, "a") as handle:
            handle.write(line + "\n")


def _git(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = history.git(*args, env=env)
    if result.returncode != 0 and args[0] in {"add", "apply", "commit"}:
        raise ValueError(f"git {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result
