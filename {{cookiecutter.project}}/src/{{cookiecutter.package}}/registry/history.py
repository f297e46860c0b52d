"""What git knows: the current commit, and pipeline outputs as committed at another ref.

The report compares with the base branch's committed files, and the registry tags every run
with its commit; both read git through here.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = os.environ | env if env else None
    command = ["git", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=environment)


def resolve(ref: str) -> str:
    """The commit behind ``ref``, or a clear error saying how to make it available."""
    result = git("rev-parse", "--verify", "--quiet", ref + "^{commit}")
    if result.returncode != 0:
        raise ValueError(
            f"base ref {ref!r} is not a commit in this git repository: fetch it "
            f"(e.g. `git fetch origin main`) or pass another one with --base"
        )
    return result.stdout.strip()


def show(commit: str, path: Path) -> str | None:
    """A file's text at ``commit`` (path relative to the current directory), None if absent."""
    result = git("show", f"{commit}:./{path.as_posix()}")
    return result.stdout if result.returncode == 0 else None


def head() -> tuple[str, bool]:
    """The current commit ("none" outside a repository) and whether tracked files changed."""
    commit = git("rev-parse", "HEAD")
    if commit.returncode != 0:
        return "none", True
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return commit.stdout.strip(), bool(dirty)


def describe_head() -> str:
    """The short commit, and whether the work tree has uncommitted changes, in words."""
    commit, dirty = head()
    text = commit[:7] if commit != "none" else "no commit yet"
    return f"{text} with uncommitted changes" if dirty and commit != "none" else text
