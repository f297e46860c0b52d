"""Prune files of options that were not chosen, then start a git repository.

One table says which paths belong to which option value; no network is used.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

# (option, values) -> paths that exist only when the option has one of those values. Files that
# merely differ by option are templated instead; this table is for whole files.
ONLY_WHEN: dict[tuple[str, tuple[str, ...]], list[str]] = {
    ("model", ("torch",)): [
        "src/{package}/modeling/torch_model.py",
        "src/{package}/modeling/torch_loop.py",
        "src/{package}/modeling/torch_steps.py",
        "tests/test_torch_capture.py",
        "tests/test_torch_model.py",
    ],
    ("gpu_runner", ("cloud-aws", "cloud-gcp", "cloud-azure")): ["gpu-runner.mk"],
    ("deploy", ("kubernetes",)): [
        "deploy/k8s",
        "src/{package}/rollout/k8s.py",
        "tests/test_k8s_manifests.py",
    ],
    ("deploy", ("local",)): ["deploy/local", "src/{package}/rollout/host.py"],
    # The cluster keeps monitoring data on a volume only when the DVC remote is a local disk.
    ("dvc_remote", ("local",)): ["deploy/k8s/monitoring-volume.yaml"],
}


def paths_to_remove(answers: dict) -> list[str]:
    """Paths owned by option values other than the chosen ones."""
    removed = []
    for (option, values), paths in ONLY_WHEN.items():
        if answers[option] not in values:
            removed.extend(path.format(package=answers["package"]) for path in paths)
    return removed


def prune(root: Path, answers: dict) -> None:
    for relative in paths_to_remove(answers):
        path = root / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def git_init(root: Path) -> None:
    """Start a repository (DVC needs one); skipped quietly when git is absent."""
    if shutil.which("git") is None or (root / ".git").exists():
        return
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(root)], check=False)


def main(answers: dict) -> int:
    root = Path.cwd()
    prune(root, answers)
    git_init(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(ANSWERS))
