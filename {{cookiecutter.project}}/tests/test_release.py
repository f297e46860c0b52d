"""A release record belongs to one merged commit: without it, or with another commit's, a deploy
stops with one line saying how to get the right one (it never retrains)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.config import RELEASE_PATCH, RELEASE_RECORD
from {{ cookiecutter.package }}.registry.release import apply, load

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    subprocess.run([*GIT, "init", "-q"], check=True)
    Path("params.yaml").write_text("seed: 1\n")
    subprocess.run([*GIT, "add", "-A"], check=True)
    subprocess.run([*GIT, "commit", "-qm", "merged"], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip()


def record(commit: str, patch: str = "") -> None:
    RELEASE_RECORD.parent.mkdir(parents=True, exist_ok=True)
    RELEASE_PATCH.write_text(patch)
    release = {"commit": commit, "version": "run-0123456789ab", "model_name": "m", "run_id": "r"}
    RELEASE_RECORD.write_text(json.dumps(release))


def test_no_record_names_the_cache_entry_and_the_fix(repository: str) -> None:
    with pytest.raises(FileNotFoundError, match=rf"release-{repository}\): .* never retrain"):
        load()


def test_another_commits_record_is_refused(repository: str) -> None:
    record("f" * 40)
    with pytest.raises(ValueError, match="it belongs to another commit"):
        load()


def test_every_job_makes_the_same_release_commit(repository: str) -> None:
    """The patch of what the pipeline changed, committed on the merged commit with the same
    names and dates: the same commit in every job that applies it."""
    Path("metrics.json").write_text('{"roc_auc": 0.8}\n')
    subprocess.run([*GIT, "add", "-A"], check=True)
    patch = subprocess.run(
        ["git", "diff", "--cached", "--binary", "HEAD"], capture_output=True, text=True
    ).stdout
    subprocess.run([*GIT, "reset", "-q", "--hard"], check=True)
    Path("metrics.json").unlink(missing_ok=True)
    record(repository, patch)
    first = apply(pull=False)[-1]
    subprocess.run([*GIT, "reset", "-q", "--hard", repository], check=True)
    assert apply(pull=False)[-1] == first != f"release commit {repository[:12]}"
    assert json.loads(Path("metrics.json").read_text()) == {"roc_auc": 0.8}
    assert load()["commit"] == repository  # the record still belongs: to the parent
