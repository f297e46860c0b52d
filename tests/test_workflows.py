"""The generated GitHub Actions: linted and audited for every combination, then run.

Fast tests check every bake of the covering set: actionlint and zizmor report nothing, every
action is pinned to a commit, every job has a timeout and only the permissions it needs, and
each `run:` step is one make target. Plans (`make -n` of each step, see workflow_runner.py)
check the exact commands for cloud GPU runners and PR comments, which cannot run here. One
slow test executes every run step of ci.yml and train.yml in a baked project.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from bakery import ROOT, bake, run, tool_env
from conftest import bake_ids
from workflow_runner import CLOUD_ACTIONS, Expression, ExpressionError, WorkflowRunner

VENV = Path(sys.prefix)  # the template's venv serves every bake
PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
PIN_COMMENT = re.compile(r"uses: (\S+) # v\d+(\.\d+)*\s*$")
SECRET = "sentinel-secret-value-0123456789"  # must never appear in any output or plan
RUN_ID, ATTEMPT = "4242", "1"
CPU_TORCH = "https://download.pytorch.org/whl/cpu"
CML = ["npx", "--yes", "@dvcorg/cml@0.20.6"]


def tool(name: str) -> str:
    path = shutil.which(name, path=str(VENV / "bin")) or shutil.which(name)
    assert path, f"{name} is missing: `make setup` installs it (requirements/test.txt)"
    return path


def workflow_files(project: Path) -> list[Path]:
    github = project / ".github"
    return sorted([*github.glob("workflows/*.yml"), *github.glob("actions/*/action.yml")])


def load(path: Path) -> dict[str, Any]:
    # PyYAML reads the `on:` key as True; give it its name back.
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps_of(project: Path) -> list[tuple[Path, str, dict[str, Any]]]:
    """(file, job id or 'composite', step) for every step of every workflow and action."""
    found = []
    for path in workflow_files(project):
        data = load(path)
        if "jobs" in data:
            for job_id, job in data["jobs"].items():
                found += [(path, job_id, step) for step in job.get("steps", [])]
        else:
            found += [(path, "composite", step) for step in data["runs"]["steps"]]
    return found


def pull_request_context(**extra: Any) -> dict[str, Any]:
    return {
        "event_name": "pull_request",
        "ref": "refs/pull/7/merge",
        "base_ref": "main",
        "head_ref": "feature",
        "repository": "acme/churn",
        "run_id": RUN_ID,
        "run_attempt": ATTEMPT,
        "server_url": "https://github.com",
        "token": SECRET,
        "event": {"pull_request": {"number": 7, "head": {"repo": {"full_name": "acme/churn"}}}},
        **extra,
    }


def plan(project: Path, workflow: str, **options: Any) -> WorkflowRunner:
    """Walk a workflow without executing anything: every make step is expanded by `make -n`."""
    runner = WorkflowRunner(
        project,
        github=options.pop("github", pull_request_context()),
        env=tool_env(VENV, {"VENV": str(VENV)}),
        secrets={"PERSONAL_ACCESS_TOKEN": SECRET, "AZURE_CLIENT_SECRET": SECRET},
        execute=False,
        **options,
    )
    runner.run_workflow(project / ".github" / "workflows" / workflow)
    return runner


def step(runner: WorkflowRunner, job: str, command: str):
    matches = [s for s in runner.jobs[job].steps if s.command.strip() == command]
    assert len(matches) == 1, f"{job}: expected one `{command}` step, got {runner.jobs[job].steps}"
    return matches[0]


def assert_no_secret(runner: WorkflowRunner) -> None:
    for job in runner.jobs.values():
        for record in job.steps:
            assert SECRET not in record.output, f"{job.name}/{record.name} shows a secret"


# --- every combination -----------------------------------------------------------------------


@pytest.mark.parametrize("bake_id", bake_ids())
def test_actionlint_and_zizmor_report_nothing(bakes, bake_id: str) -> None:
    _, project = bakes[bake_id]
    linted = run([tool("actionlint")], cwd=project, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = run([tool("zizmor"), "--offline", "--pedantic", "."], cwd=project, check=False)
    assert audited.returncode == 0, audited.stdout + audited.stderr


@pytest.mark.parametrize("bake_id", bake_ids())
def test_actions_are_pinned_to_commits_with_their_version(bakes, bake_id: str) -> None:
    _, project = bakes[bake_id]
    for path, _, found in steps_of(project):
        uses = found.get("uses")
        if uses is None or uses.startswith("./"):  # local action: pinned by this commit
            continue
        assert PIN.match(uses), f"{path.name}: {uses} is not pinned to a 40-hex commit"
    for path in workflow_files(project):
        for line in path.read_text().splitlines():
            if "uses:" in line and "@" in line:
                assert PIN_COMMENT.search(line), f"{path.name}: no `# vX.Y.Z` after: {line}"


@pytest.mark.parametrize("bake_id", bake_ids())
def test_jobs_have_timeouts_and_least_privilege(bakes, bake_id: str) -> None:
    _, project = bakes[bake_id]
    for path in project.glob(".github/workflows/*.yml"):
        workflow = load(path)
        triggers = workflow["on"]
        assert "pull_request_target" not in triggers and "workflow_run" not in triggers
        assert workflow["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
        if "pull_request" in triggers:
            concurrency = workflow["concurrency"]
            assert "github.event.pull_request.number" in concurrency["group"]
            assert "pull_request" in str(concurrency["cancel-in-progress"])
        for job_id, job in workflow["jobs"].items():
            where = f"{path.name}/{job_id}"
            assert isinstance(job.get("timeout-minutes"), int), f"{where}: no timeout-minutes"
            granted = job.get("permissions")
            assert isinstance(granted, dict), f"{where}: no job-level permissions"
            runs = {s.get("run") for s in job["steps"]}
            oidc = any(s.get("uses", "").split("@")[0] in CLOUD_ACTIONS for s in job["steps"])
            expected = {"contents": "read"}
            if "make comment" in runs:
                expected["pull-requests"] = "write"
            if oidc:
                expected["id-token"] = "write"
            if any(
                s.get("uses", "").startswith("actions/attest-build-provenance@")
                for s in job["steps"]
            ):
                # deploy.yml's image job alone pushes and signs (tests/test_deploy_workflow.py).
                expected.update({"packages": "write", "id-token": "write", "attestations": "write"})
            if "make champion-push" in runs:  # deploy.yml's champion job pushes one tag
                expected["contents"] = "write"
            assert granted == expected, f"{where}: permissions {granted}, needs {expected}"
            for found in job["steps"]:
                if found.get("uses", "").startswith("actions/checkout@"):
                    assert found["with"]["persist-credentials"] is False, where


@pytest.mark.parametrize("bake_id", bake_ids())
def test_run_steps_are_make_targets_and_never_touch_secrets(bakes, bake_id: str) -> None:
    _, project = bakes[bake_id]
    for path, job_id, found in steps_of(project):
        if "run" not in found:
            continue
        command = found["run"].strip()
        where = f"{path.name}/{job_id}: {command}"
        assert re.fullmatch(r"make [\w-]+", command), f"{where}: workflows stay thin"
        assert "${{" not in command, f"{where}: expressions go through env, never into scripts"
        # The target exists and expands for the generated Makefile.
        run(["make", "-n", command.split()[1], f"VENV={VENV}"], cwd=project)


@pytest.mark.parametrize("bake_id", bake_ids())
def test_train_runs_where_gpu_runner_says(bakes, bake_id: str) -> None:
    answers, project = bakes[bake_id]
    gpu_runner = answers.get("gpu_runner", "none")
    runner = plan(project, "train.yml")
    jobs = runner.jobs
    assert jobs["train"].result == "success" and jobs["comment"].result == "success"
    train = {s.command.strip() for s in jobs["train"].steps}
    assert ("make gpu-check" in train) == (gpu_runner != "none")
    if gpu_runner == "none":
        assert jobs["train"].runs_on == "ubuntu-latest"
    elif gpu_runner == "self-hosted":
        assert jobs["train"].runs_on == ["self-hosted", "gpu"]
        relabelled = plan(project, "train.yml", variables={"GPU_RUNNER_LABELS": '["a100"]'})
        assert relabelled.jobs["train"].runs_on == ["a100"]
        assert "nvidia-smi" in step(runner, "train", "make gpu-check").output
    else:
        assert {"launch-runner", "cleanup"} <= set(jobs)
        launch = step(runner, "launch-runner", "make gpu-runner").argv
        label = next(arg.split("=", 1)[1] for arg in launch if arg.startswith("--labels="))
        assert jobs["train"].runs_on == ["self-hosted", label]
    setup = step(runner, "train", "make setup").output
    cpu_build = answers.get("model") == "torch" and gpu_runner == "none"
    assert (CPU_TORCH in setup) == cpu_build
    assert_no_secret(runner)


@pytest.mark.parametrize("bake_id", bake_ids())
def test_ci_installs_the_cpu_torch_build(bakes, bake_id: str) -> None:
    answers, project = bakes[bake_id]
    runner = plan(project, "ci.yml")
    assert [s.command.strip() for s in runner.jobs["test"].steps if s.kind == "dry-run"] == [
        "make setup",
        "make lint",
        "make test",
    ]
    setup = step(runner, "test", "make setup").output
    assert (CPU_TORCH in setup) == (answers.get("model") == "torch")


# --- exact commands of the steps that cannot run here ---------------------------------------

TAG = f"{RUN_ID}-{ATTEMPT}"
# cloud: (default region, machine type, what cleanup must run: find by tag, then terminate)
CLOUDS = {
    "aws": (
        "us-east-1",
        "g4dn.xlarge",
        ["aws ec2 describe-instances", f"Name=tag:gh-run,Values={TAG}", "terminate-instances"],
    ),
    "gcp": (
        "us-central1-a",
        "n1-standard-4",
        [f"gcloud compute instances list --filter=labels.gh-run={TAG}", "instances delete"],
    ),
    "azure": (
        "eastus",
        "Standard_NC4as_T4_v3",
        [f'az vm list --query "[?tags.\\"gh-run\\"==\'{TAG}\'].id"', "az vm delete"],
    ),
}


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_cloud_runner_is_launched_single_use_and_always_cleaned_up(
    tmp_path: Path, cloud: str
) -> None:
    project = bake(tmp_path, project="cloud-plan", gpu_runner=f"cloud-{cloud}")
    region, machine, cleanup_commands = CLOUDS[cloud]
    tag = TAG
    runner = plan(project, "train.yml")
    assert step(runner, "launch-runner", "make gpu-runner").argv == [
        *CML,
        "runner",
        "launch",
        f"--cloud={cloud}",
        f"--cloud-region={region}",
        f"--cloud-type={machine}",
        "--cloud-gpu=nvidia-tesla-t4",
        "--cloud-spot",
        "--single",
        "--idle-timeout=600",
        f"--labels=cml-gpu-{tag}",
        f"--name=cml-gpu-{tag}",
        f"--cloud-metadata=gh-run={tag}",
    ]
    cleanup = step(runner, "cleanup", "make gpu-runner-cleanup").output
    for command in cleanup_commands:
        assert command in cleanup, cleanup
    assert_no_secret(runner)

    # Repository variables override the machine; cleanup still runs when training failed.
    workflow = load(project / ".github/workflows/train.yml")
    assert workflow["jobs"]["cleanup"]["if"].startswith("${{ always()")
    resized = plan(project, "train.yml", variables={"CLOUD_TYPE": "big", "CLOUD_REGION": "r1"})
    argv = step(resized, "launch-runner", "make gpu-runner").argv
    assert "--cloud-type=big" in argv and "--cloud-region=r1" in argv
    # Forks never launch machines (and so get no cleanup either).
    fork = pull_request_context()
    fork["event"]["pull_request"]["head"]["repo"]["full_name"] = "someone/fork"
    forked = plan(project, "train.yml", github=fork)
    assert {job.result for job in forked.jobs.values()} == {"skipped"}


@pytest.mark.parametrize(
    ("variables", "inputs", "images", "publish"),
    [
        ({}, {}, "link", "--no-publish"),
        ({"REPORT_IMAGE_HOSTING": "cml"}, {}, "embed", "--publish"),
        ({}, {"image-hosting": "cml", "base": "release"}, "embed", "--publish"),
    ],
    ids=["default-artifact", "opt-in-variable", "opt-in-dispatch"],
)
def test_report_images_stay_in_github_unless_opted_in(
    bakes, variables: dict, inputs: dict, images: str, publish: str
) -> None:
    _, project = bakes["defaults"]
    github = pull_request_context()
    if inputs:
        github.update(event_name="workflow_dispatch", base_ref="", ref="refs/heads/main")
        github["event"] = {"inputs": inputs}
    runner = plan(project, "train.yml", github=github, variables=variables, inputs=inputs)
    report = step(runner, "train", "make report").argv
    base = f"origin/{inputs.get('base', 'main')}"
    assert report[-4:] == ["--base", base, "--images", images]
    assert step(runner, "train", "make gate").argv[-2:] == ["--base", base]
    if inputs:
        assert runner.jobs["comment"].result == "skipped"  # no pull request to comment on
        return
    assert step(runner, "comment", "make comment").argv == [
        *CML,
        "comment",
        "update",
        "--target=pr",
        "--watermark-title=model-report",
        publish,
        "report.md",
    ]


def test_the_template_repository_ci_keeps_the_same_rules() -> None:
    linted = run([tool("actionlint")], cwd=ROOT, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    audited = run([tool("zizmor"), "--offline", "--pedantic", ".github"], cwd=ROOT, check=False)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    workflow = load(ROOT / ".github/workflows/ci.yml")
    assert workflow["permissions"] == {}
    for job_id, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), job_id
        assert job["permissions"] == {"contents": "read"}, job_id
        for found in job["steps"]:
            if "uses" in found:
                assert PIN.match(found["uses"]), found["uses"]
            else:
                assert re.fullmatch(r"make [\w-]+", found["run"].strip()), found["run"]


# --- the runner itself ----------------------------------------------------------------------


def evaluate(source: str, **contexts: Any) -> Any:
    functions = {"always": lambda: True, "fromjson": json.loads}
    return Expression(source, contexts, functions).evaluate()


def test_expressions_follow_github_semantics() -> None:
    github = {"base_ref": "", "event_name": "pull_request"}
    assert evaluate("github.base_ref || inputs.base || 'main'", github=github, inputs={}) == "main"
    assert evaluate("github.event_name == 'PULL_REQUEST'", github=github) is True
    assert evaluate("!(github.event_name == 'push') && always()", github=github) is True
    assert evaluate('fromJSON(\'["a", "b"]\')', github=github) == ["a", "b"]
    assert evaluate("vars.MISSING", vars={}) is None
    with pytest.raises(ExpressionError, match="unknown context"):
        evaluate("matrix.python", github=github)


# --- execution: every run step, for real -----------------------------------------------------


@pytest.fixture(scope="module")
def pull_request(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baked project on a feature branch with a params change, its origin holding main."""
    root = tmp_path_factory.mktemp("workflow-run")
    project = bake(root, project="workflow-run")
    git = ["git", "-c", "commit.gpgsign=false"]
    run([*git, "add", "-A"], cwd=project)
    run([*git, "commit", "-qm", "main"], cwd=project)
    # actions/checkout with fetch-depth 0 leaves origin/<base> in the clone: so do we.
    run(["git", "clone", "--quiet", "--bare", str(project), str(root / "origin.git")], cwd=root)
    run(["git", "remote", "add", "origin", str(root / "origin.git")], cwd=project)
    run(["git", "fetch", "--quiet", "origin"], cwd=project)
    run(["git", "checkout", "--quiet", "-b", "feature"], cwd=project)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("learning_rate: 0.05", "learning_rate: 0.08"))
    run([*git, "commit", "-qam", "a faster learning rate"], cwd=project)
    return project


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_every_run_step_of_ci_and_train_executes(pull_request: Path) -> None:
    project = pull_request
    runner = WorkflowRunner(
        project,
        github=pull_request_context(),
        env=tool_env(VENV, {"VENV": str(VENV), "UV_FLAGS": "--no-deps"}),
        secrets={"PERSONAL_ACCESS_TOKEN": SECRET},
    )
    for workflow in ["ci.yml", "train.yml"]:
        runner.run_workflow(project / ".github" / "workflows" / workflow)
    records = {(job.name, s.command.strip()): s for job in runner.jobs.values() for s in job.steps}
    failed = [s for s in records.values() if s.outcome != "success"]
    assert not failed, "\n\n".join(f"{s.job}/{s.name}:\n{s.output[-4000:]}" for s in failed)
    assert {job.name: job.result for job in runner.jobs.values()} == {
        "test": "success",
        "train": "success",
        "comment": "success",
    }

    # Every run step of both workflows (and of the setup action) ran; only `cml` was planned.
    for path, _, found in steps_of(project):
        if "run" in found:
            kinds = {s.kind for (_, command), s in records.items() if command == found["run"]}
            assert kinds, f"{path.name}: `{found['run']}` never ran"
    planned = {command for (_, command), s in records.items() if s.kind == "dry-run"}
    assert planned == {"make comment"}
    assert records[("comment", "make comment")].argv == [
        *CML,
        "comment",
        "update",
        "--target=pr",
        "--watermark-title=model-report",
        "--no-publish",
        "report.md",
    ]

    # The report compared with origin/main: no metrics there yet, but the params change shows.
    report = (project / "report.md").read_text()
    assert "Quality gate passed" in report.splitlines()[2]
    assert "no baseline" in report and "Compared with `origin/main`" in report
    assert "| `train.sklearn.learning_rate` | 0.05 | 0.08 |" in report
    assert "](https://github.com/acme/churn/actions/runs/4242)" in report
    registry = (project / "reports" / "registry.json").read_text()
    assert json.loads(registry)["run_id"] in report
    [uploaded] = [s for (job, command), s in records.items() if "upload-artifact" in command]
    assert {"report.md", "reports/report/now/roc.png"} <= set(uploaded.output.splitlines())
    # `make push` filled the local DVC remote beside the project.
    storage = project.parent / "workflow-run-dvc-storage"
    assert any(path.is_file() for path in storage.rglob("*"))
    assert_no_secret(runner)
