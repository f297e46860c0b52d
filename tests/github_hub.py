"""What GitHub keeps for a repository between workflow runs, on this machine, for act.

A release cycle (tests/test_release_cycle.py) runs one workflow after another as GitHub would:
each run starts from a fresh clone of ``origin`` (a local bare repository that receives pushed
branches and tags) at the event's commit, so no file a job or an earlier run left behind carries
over; act copies that clone into each job without its ignored files. Between runs only what
GitHub keeps survives:

- ``origin``: branches and tags (the champion tags a deploy pushes);
- the actions cache (``caches``): the stand-ins of actions/cache save and restore there, scoped
  by ref as on GitHub (tests/act/bin/stand-in);
- each run's conclusion per commit, which GitHub's API reports: the recorder of ``gh`` answers
  `gh api .../actions/runs?head_sha=...` from them (``ANSWERS``);
- outside GitHub, the serving host's directory (``serving``) and a directory standing in for a
  cloud DVC remote where a bake names one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from act_runner import GITHUB_REMOTE, GITHUB_URL, ActRun, Event, act
from bakery import run, tool_env

VENV = Path(sys.prefix)
GIT = ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]

# GitHub's API, as far as the workflows ask it: the runs of a commit, a pull request's state.
GH_ANSWER = """#!{python}
import json, os, sys
args = sys.argv[1:]
if args[:1] == ["api"] and "/actions/runs?head_sha=" in args[1]:
    sha = args[1].split("head_sha=")[1].split("&")[0]
    runs = json.loads(open(os.environ["HUB_RUNS"]).read()).get(sha, {{}})
    for path, conclusion in runs.items():
        print(f".github/workflows/{{path}} completed {{conclusion}}")
elif args[:2] == ["pr", "view"]:
    sys.exit(1)  # no pull request of that branch yet
"""


def overlay_venv(directory: Path) -> Path:
    """A venv of its own that sees every package of the template's venv (a .pth file) and its
    tools (links): `make setup` in a job installs the baked project here, not into the shared
    venv."""
    if not (directory / "bin" / "python").exists():
        run(
            [
                str(VENV / "bin" / "uv"),
                "venv",
                "--quiet",
                "--python",
                sys.executable,
                str(directory),
            ],
            directory.parent,
        )
        site = next((directory / "lib").glob("python3*/site-packages"))
        shared = next((VENV / "lib").glob("python3*/site-packages"))
        (site / "_template_venv.pth").write_text(f"{shared}\n")
        for tool in (VENV / "bin").iterdir():
            target = directory / "bin" / tool.name
            if not target.exists() and not tool.name.startswith(("python", "activate")):
                target.symlink_to(tool)
    return directory


class Hub:
    """GitHub for one repository: origin, the actions cache, the runs' conclusions."""

    def __init__(self, root: Path, project: Path, venv: Path) -> None:
        self.root, self.name, self.venv = root, project.name, venv
        self.origin = root / "origin.git"
        self.caches, self.serving, self.answers = (
            root / "caches",
            root / "serving",
            root / "answers",
        )
        for directory in (self.caches, self.serving, self.answers):
            directory.mkdir(parents=True, exist_ok=True)
        self.runs_file = root / "runs.json"
        self.runs_file.write_text("{}")
        self.count = 0
        self.scratch = root
        (self.answers / "gh").write_text(GH_ANSWER.format(python=sys.executable))
        (self.answers / "gh").chmod(0o755)
        run([*GIT, "init", "-q", "-b", "main"], project)
        run([*GIT, "add", "-A"], project)
        run([*GIT, "commit", "-qm", "baked"], project)
        run(["git", "clone", "-q", "--bare", str(project), str(self.origin)], root)

    # --- the repository ---------------------------------------------------------------------

    def git(self, *args: str) -> str:
        return run([*GIT, "--git-dir", str(self.origin), *args], self.root).stdout.strip()

    def sha(self, ref: str) -> str:
        return self.git("rev-parse", ref)

    def commit(self, branch: str, message: str, change: Callable[[Path], None]) -> str:
        """A commit on ``branch`` (new ones start at main), pushed to origin; returns its sha."""
        work = self.clone(branch if branch in self.git("branch", "--list", branch) else "main")
        run([*GIT, "checkout", "-q", "-B", branch], work)
        change(work)
        run([*GIT, "add", "-A"], work)
        run([*GIT, "commit", "-qm", message], work)
        run([*GIT, "push", "-q", "origin", f"HEAD:refs/heads/{branch}"], work)
        return self.sha(branch)

    def merge(self, branch: str) -> tuple[str, str]:
        """Fast-forward main to ``branch`` in origin; returns (before, after)."""
        before = self.sha("main")
        work = self.clone(branch)
        run([*GIT, "push", "-q", "origin", f"{self.sha(branch)}:refs/heads/main"], work)
        return before, self.sha("main")

    def clone(self, ref: str) -> Path:
        """A fresh clone of origin at ``ref``, in a directory of its own."""
        self.count += 1
        work = self.root / "clones" / str(self.count) / self.name
        run(["git", "clone", "-q", "--no-local", str(self.origin), str(work)], self.root)
        run([*GIT, "checkout", "-q", ref], work)
        run(["git", "remote", "add", GITHUB_REMOTE, GITHUB_URL], work)
        return work

    # --- runs ---------------------------------------------------------------------------------

    def runs(self) -> dict[str, dict[str, str]]:
        return json.loads(self.runs_file.read_text())

    def conclude(self, sha: str, workflow: str, conclusion: str) -> None:
        """What GitHub's API reports for ``workflow``'s push run of ``sha``."""
        runs = self.runs()
        runs.setdefault(sha, {})[workflow] = conclusion
        self.runs_file.write_text(json.dumps(runs))

    def run(
        self,
        workflow: str,
        event: Event,
        ref: str,
        *,
        runners: tuple[str, ...] = ("ubuntu-latest",),
        secrets: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        attempt: str = "1",
        recorders: tuple[str, ...] = (),
    ) -> ActRun:
        """``workflow`` for ``event`` at ``ref``, from a fresh clone; a push run's conclusion is
        then what GitHub's API says of that commit."""
        started = time.monotonic()
        work = self.clone(ref)
        sha = run(["git", "rev-parse", "HEAD"], work).stdout.strip()
        env = tool_env(
            self.venv,
            {
                "VENV": str(self.venv),
                "UV_FLAGS": "--no-deps --offline",
                "CACHES": str(self.caches),
                "ANSWERS": str(self.answers),
                "HUB_RUNS": str(self.runs_file),
                "SERVING_HOME": str(self.serving),
                # A job's BentoML store is its own on GitHub: here one per run.
                "BENTOML_HOME": str(work.parent / "bentoml"),
            },
        )
        self.scratch = work.parent / "act"  # the run's artifacts and records, kept
        result = act(
            work,
            workflow,
            event,
            self.scratch,
            env=env,
            secrets=secrets,
            variables=variables,
            runners=runners,
            run_id=str(self.count),
            attempt=attempt,
            recorders=recorders,
        )
        (self.scratch / "act.log").write_text(result.output)
        print(f"{workflow} {event.name} at {ref}: {time.monotonic() - started:.0f} s", flush=True)
        if event.name == "push":
            failed = "failure" in result.jobs.values()
            self.conclude(sha, workflow, "failure" if failed else "success")
        shutil.rmtree(work, ignore_errors=True)
        return result

    def cached(self, key: str, ref: str = "refs/heads/main") -> Path:
        """An entry of the actions cache, as the cache stand-in stores it."""
        return self.caches / ref.replace("/", "%") / key


def record_of(hub: Hub, sha: str) -> dict:
    """The release record train.yml's push run of ``sha`` left in the cache."""
    path = hub.cached(f"release-{sha}") / "build" / "release" / "release.json"
    return json.loads(path.read_text())


def kill_family(pid: int) -> None:
    """SIGKILL a process and its descendants (a server and its workers): a crash."""
    import psutil

    try:
        family = [psutil.Process(pid)]
        family += family[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for process in reversed(family):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def stop_serving_host(serving: Path) -> None:
    """Whatever the deploys left running on the (stand-in) serving host."""
    for pidfile in sorted((serving / "pids").glob("*.pid")):
        kill_family(int(pidfile.read_text()))


def git_log(origin: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(origin), *args], capture_output=True, text=True
    ).stdout.strip()
