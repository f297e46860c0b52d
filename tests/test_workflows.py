"""The generated GitHub Actions: linted and audited for every combination, then run with act.

Fast tests check every bake of the covering set: actionlint and zizmor report nothing, every
action is pinned to a commit, every job has a timeout and only the permissions it needs, and
each `run:` step is one make target. Plans run each distinct rendering of the workflows through
act (see act_runner.py) with `make -n` in place of every make step: act decides which jobs run,
where, with which env, and the plans show the exact commands for cloud GPU runners and PR
comments, which cannot run here. One slow test executes every run step of ci.yml and train.yml
in a baked project with act, only GitHub- and cloud-only commands replaced by recorders.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from act_runner import (
    ATTEMPT,
    GITHUB_REMOTE,
    GITHUB_URL,
    RECORDERS,
    RUN_ID,
    ActRun,
    Event,
    act,
    dispatch,
    plan_checkout,
    pull_request,
    push,
    rendering_key,
)
from bakery import ROOT, bake, run, tool_env
from conftest import bake_ids

VENV = Path(sys.prefix)  # the template's venv serves every bake
sys.path.insert(0, str(ROOT / "tools"))
import pins  # noqa: E402  (tools/pins.py: the pin table and `make pins`)

PIN_TABLE = pins.read_table(pins.TABLE.read_text())
PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# owner/repo[/path]@<commit> # <version>: the table's row is the repository's.
USES_LINE = re.compile(r"uses: ([\w.-]+/[\w.-]+)(?:/[\w./-]+)?@([0-9a-f]{40}) # (v[\d.]+)")
PIN_COMMENT = re.compile(r"uses: (\S+) # v\d+(\.\d+)*\s*$")
SECRET = "sentinel-secret-value-0123456789"  # must never appear in any output or record
SECRETS = {"PERSONAL_ACCESS_TOKEN": SECRET, "AZURE_CLIENT_SECRET": SECRET, "GITHUB_TOKEN": SECRET}
# The cloud tag of a run's machines: the run id, the same in every attempt of the run.
TAG = RUN_ID
# The label of the machine a cloud launch starts for the run's first attempt.
LABEL = f"cml-gpu-{TAG}-{ATTEMPT}"
CPU_TORCH = "https://download.pytorch.org/whl/cpu"
# The Makefile's default CML; act runs give `CML=cml`, the recorder on PATH.
CML = ["npx", "--yes", "@dvcorg/cml@0.20.6"]
# Actions that exchange the job's OIDC token for cloud credentials.
CLOUD_ACTIONS = {
    "aws-actions/configure-aws-credentials",
    "google-github-actions/auth",
    "azure/login",
}


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


Plan = Callable[..., ActRun]


@pytest.fixture(scope="session")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """Run the workflows an event triggers with act in plan mode: every make step only
    expanded by `make -n`.

    act runs once per distinct rendering (bakes with the same workflows, makefiles and
    pyproject.toml plan the same) and arguments, in a checkout of just those files.
    """
    root = tmp_path_factory.mktemp("plans")
    done: dict[str, ActRun] = {}

    def planned(
        project: Path,
        event: Event | None = None,
        runners: tuple[str, ...] = ("ubuntu-latest",),
        variables: dict[str, str] | None = None,
        attempt: str = ATTEMPT,
    ) -> ActRun:
        event = event or pull_request()
        rendering = rendering_key(project)[:16]
        arguments = json.dumps(
            [event.name, event.payload, event.actor, runners, variables or {}, attempt]
        )
        key = f"{rendering}-{hashlib.sha256(arguments.encode()).hexdigest()[:16]}"
        if key not in done:
            checkout = root / rendering / project.name
            if not checkout.exists():
                plan_checkout(project, checkout)
            env = tool_env(VENV, {"VENV": str(VENV)})
            done[key] = act(
                checkout,
                None,
                event,
                root / key,
                env=env,
                plan=True,
                runners=runners,
                variables=variables,
                secrets=SECRETS,
                attempt=attempt,
            )
            failed = [r for r in done[key].records if r["kind"] == "make" and r["rc"] != 0]
            assert not failed, f"make -n failed: {failed}\n{done[key].output[-4000:]}"
        return done[key]

    return planned


def targets(run: ActRun, job: str) -> list[str]:
    """The make targets a job's steps ran (or planned), in order."""
    return [" ".join(r["args"]) for r in run.records if r["kind"] == "make" and r["job"] == job]


def default_cml(project: Path, target: str) -> list[str]:
    """The command `make <target>` plans without the test's CML=cml: the pinned npx package."""
    planned = run(["make", "-n", target, f"VENV={VENV}"], cwd=project).stdout
    return shlex.split(planned.replace("\\\n", " ").splitlines()[-1])


def assert_no_secret(run: ActRun) -> None:
    assert SECRET not in run.output, "act's log shows a secret"
    assert SECRET not in json.dumps(run.records), "a step got a secret in its command or output"


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
                # Exactly the pin table's commit and tag (templates/github.jinja).
                found = USES_LINE.search(line)
                assert found, line
                action, sha, tag = found.groups()
                assert PIN_TABLE.get(action) == (sha, tag), f"{path.name}: {line} not in the table"


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
            oidc = oidc or "make azure-token" in runs  # DVC's Azure remote: the raw OIDC token
            expected = {"contents": "read"}
            if "make comment" in runs:
                expected["pull-requests"] = "write"
            if oidc:
                expected["id-token"] = "write"
            if any(
                s.get("uses", "").startswith("actions/attest-build-provenance@")
                for s in job["steps"]
            ):
                # deploy.yml's image job alone signs (tests/test_deploy_workflow.py), and pushes
                # an image where it builds one.
                expected.update({"id-token": "write", "attestations": "write"})
                if "make image-push" in runs:
                    expected["packages"] = "write"
            if "make ci-wait" in runs:  # deploy.yml reads the runs of its commit
                expected["actions"] = "read"
            if "make attestation-verify" in runs:  # before traffic moves
                expected["attestations"] = "read"
            if "make champion-push" in runs:  # deploy.yml's champion job pushes one tag
                expected["contents"] = "write"
            # retrain.yml's pull request is pushed and opened with a GitHub App's token (or a
            # named secret): github.token could only open one that starts no checks.
            if "make runner-watch" in runs:  # reads the train job; cancels a runnerless run
                expected["actions"] = "write"
            assert granted == expected, f"{where}: permissions {granted}, needs {expected}"
            # Credentials (OIDC, a writable token, any secret) only inside a named environment,
            # whose branch rules and cloud trust policies decide who may use them.
            holds = "secrets." in json.dumps(job) or "write" in {
                granted.get("id-token"),
                granted.get("contents"),
                granted.get("actions"),
            }
            if holds:
                assert isinstance(job.get("environment"), str), f"{where}: no environment"
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
def test_train_runs_where_gpu_runner_says(bakes, plan: Plan, bake_id: str) -> None:
    answers, project = bakes[bake_id]
    gpu_runner = answers.get("gpu_runner", "none")
    # Only ubuntu-latest has a runner here: act names the labels of any job it cannot place.
    hosted = plan(project)
    if gpu_runner == "none":
        jobs = ["test", "changes", "train", "comment", "required"]
        assert hosted.jobs == dict.fromkeys(jobs, "success")
        planned = hosted
    else:
        assert hosted.jobs["train"] == "no-runner"
        labels = hosted.labels["train"]
        if gpu_runner == "self-hosted":
            assert labels == ["self-hosted", "gpu"]
            relabelled = plan(project, variables={"GPU_RUNNER_LABELS": '["a100"]'})
            assert relabelled.labels["train"] == ["a100"]
            on_a100 = plan(
                project,
                runners=("ubuntu-latest", "a100"),
                variables={"GPU_RUNNER_LABELS": '["a100"]'},
            )
            assert on_a100.jobs["train"] == "success"
        else:
            launch = hosted.argv("launch-runner", "gpu-runner")
            label = next(arg.split("=", 1)[1] for arg in launch if arg.startswith("--labels="))
            assert labels == ["self-hosted", label] and label == LABEL
        planned = plan(project, runners=("ubuntu-latest", labels[-1]))
        assert planned.jobs["train"] == "success" and planned.jobs["comment"] == "success"
        if gpu_runner.startswith("cloud-"):
            assert {"launch-runner", "cleanup"} <= set(planned.jobs)
        assert "nvidia-smi" in planned.make("train", "gpu-check")["plan"]
    assert ("gpu-check" in targets(planned, "train")) == (gpu_runner != "none")
    setup = planned.make("train", "setup")["plan"]
    cpu_build = answers.get("model") == "torch" and gpu_runner == "none"
    assert (CPU_TORCH in setup) == cpu_build
    assert_no_secret(hosted)
    assert_no_secret(planned)


@pytest.mark.parametrize("bake_id", bake_ids())
def test_ci_installs_the_cpu_torch_build(bakes, plan: Plan, bake_id: str) -> None:
    answers, project = bakes[bake_id]
    planned = plan(project)  # the pull request's run: ci.yml and train.yml
    assert planned.jobs["test"] == "success"
    assert targets(planned, "test") == ["setup", "lint", "test-all"]
    setup = planned.make("test", "setup")["plan"]
    assert (CPU_TORCH in setup) == (answers.get("model") == "torch")


# --- exact commands of the steps that cannot run here ---------------------------------------

# cloud: (default region, machine type, image in the syntax CML's provider accepts for that
# cloud, what cleanup must run for each kind of resource the launch creates, found by the tag)
CLOUDS = {
    "aws": (
        "us-east-1",
        "g4dn.xlarge",
        "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *",
        [
            "describe-instances --region us-east-1 --output text "
            "--query 'Reservations[].Instances[].InstanceId' "
            f"--filters Name=tag:gh-run,Values={TAG}",
            "aws ec2 terminate-instances",
            "aws ec2 wait instance-terminated",
            f"describe-key-pairs --region us-east-1 --output text --query 'KeyPairs[].KeyName' "
            f"--filters Name=tag:gh-run,Values={TAG}",
            "aws ec2 delete-key-pair",
            "describe-security-groups --region us-east-1 --output text "
            "--query 'SecurityGroups[].GroupId' "
            f"--filters Name=tag:gh-run,Values={TAG}",
            "aws ec2 delete-security-group",
        ],
    ),
    "gcp": (
        "us-central1-a",
        "n1-standard-4",
        "ubuntu-os-accelerator-images/ubuntu-accelerator-2204-amd64-with-nvidia-550",
        [
            f"gcloud compute instances list --filter=labels.gh-run={TAG}",
            "gcloud compute instances delete",
            # Firewall rules have no labels: found by the machine name's prefix (run id).
            f"gcloud compute firewall-rules list --filter='name ~ ^cml-cml-gpu-{TAG}-'",
            "gcloud compute firewall-rules delete --quiet",
        ],
    ),
    "azure": (
        "eastus",
        "Standard_NC4as_T4_v3",
        "microsoft-dsvm:ubuntu-hpc:2204:latest",
        # One resource group per machine holds its disk, IP, network and security group.
        [f"az group list --tag gh-run={TAG} --query '[].name'", "az group delete --yes"],
    ),
}
# The image syntax TPI accepts per cloud (iterative/{aws,gcp,azure}/provider.go).
IMAGE_SYNTAX = {
    "aws": r"[^:]+",  # an AMI name pattern (DescribeImages name filter)
    "gcp": r"[-a-z0-9]+/[-_a-zA-Z0-9]+",  # project/family
    "azure": r"[^:]+:[^:]+:[^:]+:[^:]+",  # publisher:offer:sku:version
}


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_cloud_runner_is_launched_single_use_and_always_cleaned_up(
    tmp_path: Path, plan: Plan, cloud: str
) -> None:
    project = bake(tmp_path, project="cloud-plan", gpu_runner=f"cloud-{cloud}")
    region, machine, image, cleanup_commands = CLOUDS[cloud]
    assert re.fullmatch(IMAGE_SYNTAX[cloud], image)
    runners = ("ubuntu-latest", LABEL)
    planned = plan(project, runners=runners)
    jobs = ["test", "changes", "launch-runner", "train", "comment", "cleanup", "required"]
    assert planned.jobs == dict.fromkeys(jobs, "success")
    launch = planned.argv("launch-runner", "gpu-runner")
    assert launch[0] == "cml" and default_cml(project, "gpu-runner")[:3] == CML
    assert launch[1:] == [
        "runner",
        "launch",
        f"--cloud={cloud}",
        f"--cloud-region={region}",
        f"--cloud-type={machine}",
        "--cloud-gpu=nvidia-tesla-t4",
        f"--cloud-image={image}",
        "--cloud-spot",
        "--single",
        "--idle-timeout=600",
        f"--labels={LABEL}",
        f"--name={LABEL}",
        f"--cloud-metadata=gh-run={TAG}",
    ]
    # The registration token reaches the step (masked in the record), never its command line.
    assert planned.make("launch-runner", "gpu-runner")["env"]["REPO_TOKEN"] == "***"
    cleanup = planned.make("cleanup", "gpu-runner-cleanup")["plan"]
    for command in cleanup_commands:
        assert command in cleanup, cleanup
    authenticated = {r["job"] for r in planned.records if r.get("action") in CLOUD_ACTIONS}
    # Azure's launch authenticates through Terraform's client secret, not an OIDC action.
    assert authenticated == ({"cleanup"} if cloud == "azure" else {"launch-runner", "cleanup"})
    assert_no_secret(planned)

    # Repository variables override the machine; cleanup still runs when training failed.
    workflow = load(project / ".github/workflows/train.yml")
    assert workflow["jobs"]["cleanup"]["if"].startswith("${{ always()")
    resized = plan(project, variables={"CLOUD_TYPE": "big", "CLOUD_REGION": "r1"})
    argv = resized.argv("launch-runner", "gpu-runner")
    assert "--cloud-type=big" in argv and "--cloud-region=r1" in argv
    imaged = plan(project, variables={"CLOUD_IMAGE": "my/image"}, runners=runners)
    assert "--cloud-image=my/image" in imaged.argv("launch-runner", "gpu-runner")
    # The runner-registration token: the GitHub App's when its client id is set, else the PAT.
    assert not planned.actions("actions/create-github-app-token")
    app = plan(project, variables={"RUNNER_APP_CLIENT_ID": "Iv1.abc"}, runners=runners)
    [minted] = app.actions("actions/create-github-app-token")
    assert minted["job"] == "launch-runner"
    assert minted["with"]["client-id"] == "Iv1.abc"
    assert minted["with"]["permission-administration"] == "write"
    assert app.make("launch-runner", "gpu-runner")["env"]["REPO_TOKEN"] == "***"
    # Revoked right after the launch, not when the job (which then watches training) ends.
    assert minted["with"]["skip-token-revoke"] == "true"
    assert targets(app, "launch-runner")[-3:] == [
        "gpu-runner",
        "runner-token-revoke",
        "runner-watch",
    ]
    revoke = app.make("launch-runner", "runner-token-revoke")
    assert revoke["env"]["REPO_TOKEN"] == "***"  # the App's token, masked in the record
    assert "gh api --method DELETE /installation/token" in revoke["plan"]
    assert not planned.makes("launch-runner", "runner-token-revoke")  # a PAT is not revoked
    # CML's analytics are off wherever make runs it (gpu-runner, comment).
    shown = run(
        [
            "make",
            "-s",
            "--eval",
            "show-tracking: ; @echo $$ITERATIVE_DO_NOT_TRACK",
            "show-tracking",
        ],
        cwd=project,
    )
    assert shown.stdout.strip() == "1"
    # Training never found a runner here, and cleanup ran all the same.
    assert resized.jobs["train"] == "no-runner" and resized.jobs["cleanup"] == "success"
    # Forks never launch machines (and so get no cleanup either); ci.yml still tests them.
    forked = plan(project, event=pull_request("someone/fork"), runners=runners)
    assert forked.jobs == {
        **dict.fromkeys(jobs, "skipped"),
        "test": "success",
        "changes": "success",
        "required": "success",
    }
    assert {record["job"] for record in forked.records} == {"test", "changes", "required"}


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
    bakes, plan: Plan, variables: dict, inputs: dict, images: str, publish: str
) -> None:
    _, project = bakes["defaults"]
    event = dispatch(**inputs) if inputs else pull_request()
    planned = plan(project, event=event, variables=variables)
    report = planned.argv("train", "report")
    base = f"origin/{inputs.get('base', 'main')}"
    assert report[-4:] == ["--base", base, "--images", images]
    assert planned.argv("train", "gate")[-2:] == ["--base", base]
    if inputs:
        assert planned.jobs["comment"] == "skipped"  # no pull request to comment on
        return
    comment = planned.argv("comment", "comment")
    assert comment[0] == "cml" and default_cml(project, "comment")[:3] == CML
    assert comment[1:] == [
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


def test_recorders_keep_exact_arguments(tmp_path: Path) -> None:
    """The stand-ins' records are what the assertions above compare: arguments byte for byte."""
    log = tmp_path / "records.jsonl"
    argv = ["comment", 'say "hi"\\', "two\nlines", "tab\there", "--name=é"]
    env = {**tool_env(VENV), "RECORD_LOG": str(log), "GITHUB_JOB": "comment"}
    run([str(RECORDERS / "cml"), *argv], cwd=tmp_path, env=env)
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    assert record == {"kind": "command", "job": "comment", "program": "cml", "argv": argv}


# --- execution: every run step, for real -----------------------------------------------------


@pytest.fixture(scope="module")
def feature_branch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baked project on a feature branch with a params change, origin/main beside it."""
    root = tmp_path_factory.mktemp("workflow-run")
    project = bake(root, project="workflow-run")
    # act runs each job in its own copy of the work tree, which it deletes afterwards: the
    # DVC remote must be an absolute directory to stay beside the project.
    storage = root / "workflow-run-dvc-storage"
    run([str(VENV / "bin" / "dvc"), "remote", "modify", "storage", "url", str(storage)], project)
    git = ["git", "-c", "commit.gpgsign=false"]
    run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project)
    run([*git, "add", "-A"], cwd=project)
    run([*git, "commit", "-qm", "main"], cwd=project)
    # actions/checkout with fetch-depth 0 leaves origin/<base> in the clone: so do we, with a
    # bare clone as origin that `git push` reaches. act reads github.repository from another
    # remote, on github.com.
    run(["git", "clone", "--quiet", "--bare", str(project), str(root / "origin.git")], cwd=root)
    run(["git", "remote", "add", "origin", str(root / "origin.git")], cwd=project)
    run(["git", "fetch", "--quiet", "origin"], cwd=project)
    run(["git", "remote", "add", GITHUB_REMOTE, GITHUB_URL], cwd=project)
    run(["git", "checkout", "--quiet", "-b", "feature"], cwd=project)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("learning_rate: 0.05", "learning_rate: 0.08"))
    run([*git, "commit", "-qam", "a faster learning rate"], cwd=project)
    return project


# The workflows the slow test executes on a pull request, in order: a new workflow needs one
# line here (and its own assertions below). A workflow the bake does not have is skipped.
# train.yml on merged commits, deploy.yml and retrain.yml run in tests/test_release_cycle.py,
# each from a fresh clone of a local origin, as the release cycle runs them.
EXECUTED = {
    "ci.yml": pull_request(),
    "train.yml": pull_request(),
}


def execute(project: Path, scratch: Path, workflows: dict[str, Event]) -> dict[str, ActRun]:
    """Run each workflow the project has with act, for real, in order; workspaces kept."""
    env = tool_env(VENV, {"VENV": str(VENV), "UV_FLAGS": "--no-deps"})
    return {
        workflow: act(
            project,
            workflow,
            event,
            scratch / workflow,
            env=env,
            secrets=SECRETS,
            keep_workspaces=scratch / "workspaces" / workflow,
        )
        for workflow, event in workflows.items()
        if (project / ".github" / "workflows" / workflow).is_file()
    }


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_every_run_step_of_ci_and_train_executes(feature_branch: Path, tmp_path: Path) -> None:
    """ci.yml and train.yml on the pull request: every run step a pull request runs."""
    project = feature_branch
    runs = execute(project, tmp_path, EXECUTED)
    makes = [r for run_ in runs.values() for r in run_.records if r["kind"] == "make"]
    logs = "\n\n".join(f"--- {name}\n{run_.output[-6000:]}" for name, run_ in runs.items())
    assert all(r["rc"] == 0 for r in makes), logs
    for name, run_ in runs.items():  # also the workflows added after ci.yml and train.yml
        assert "failure" not in run_.jobs.values(), f"{name}: {run_.jobs}\n{logs}"
    assert runs["ci.yml"].jobs == {"test": "success"}, logs
    jobs = ["changes", "train", "comment", "required"]
    assert runs["train.yml"].jobs == dict.fromkeys(jobs, "success")
    # The required check ran for real and found training and the gate passed.
    assert runs["train.yml"].make("required", "required-check")["rc"] == 0

    # Every run step a pull request runs (and the setup action's) ran for real; the steps of
    # merged code only (push, release record) run in tests/test_release_cycle.py.
    ran = {" ".join(r["args"]) for r in makes}
    for path, _, found in steps_of(project):
        merged_only = "github.event_name == 'push'" in str(found.get("if"))
        merged_only |= "github.event_name != 'pull_request'" in str(found.get("if"))
        if "run" in found and path.name in {*EXECUTED, "action.yml"} and not merged_only:
            assert found["run"].split()[1] in ran, f"{path.name}: `{found['run']}` never ran"
    # Only `cml` stood in for the real thing: the one sticky comment, with the PR's token.
    [comment] = [r for name in ("ci.yml", "train.yml") for r in runs[name].commands()]
    assert (comment["job"], comment["program"]) == ("comment", "cml")
    assert comment["argv"] == [
        "comment",
        "update",
        "--target=pr",
        "--watermark-title=model-report",
        "--no-publish",
        "report.md",
    ]
    train = runs["train.yml"]
    assert train.make("comment", "comment")["env"]["REPO_TOKEN"] == "***"

    # The report compared with origin/main: no metrics there yet, but the params change shows.
    workspace = tmp_path / "workspaces" / "train.yml" / "train"  # after train's last step
    report = (workspace / "report.md").read_text()
    assert "Quality gate passed" in report.splitlines()[2]
    assert "no baseline" in report and "Compared with `origin/main`" in report
    assert "| `train.sklearn.learning_rate` | 0.05 | 0.08 |" in report
    assert "](https://github.com/acme/churn/actions/runs/4242)" in report
    registry = (workspace / "reports" / "registry.json").read_text()
    assert json.loads(registry)["run_id"] in report
    # The report travelled to the comment job as the run's artifact.
    [uploaded] = train.actions("actions/upload-artifact")
    assert {"report.md", "reports/report/now/roc.png"} <= set(uploaded["files"])
    [downloaded] = train.actions("actions/download-artifact")
    assert downloaded["job"] == "comment" and downloaded["files"] == uploaded["files"]
    # A pull request's training is a preview: it keeps nothing (no push, no release record).
    assert not train.makes("train", "push") and not train.makes("train", "release-record")
    for run_ in runs.values():
        assert_no_secret(run_)


# --- the required check, re-runs, fresh credentials ------------------------------------------


# What the `required` step's decision reads (everything else in its environment is act's).
DECISION = ("CHANGED", "EVENT", "FORK", "ACTOR", "LAUNCH", "TRAIN", "GATE")


def decide(project: Path, planned: ActRun) -> tuple[int, str]:
    """Run `make required-check` for real with the environment act gave the `required` step."""
    given = planned.make("required", "required-check")["env"]
    env = {**tool_env(VENV), **{name: given.get(name, "") for name in DECISION}}
    result = run(["make", "required-check"], cwd=project, env=env, check=False)
    return result.returncode, (result.stdout + result.stderr).strip()


@pytest.mark.parametrize(
    "gpu_runner", ["none", "self-hosted", "cloud-aws", "cloud-gcp", "cloud-azure"]
)
def test_required_check_is_green_only_when_training_and_the_gate_passed(
    tmp_path: Path, plan: Plan, gpu_runner: str
) -> None:
    project = bake(tmp_path, project="required-plan", gpu_runner=gpu_runner)
    gpu = {"none": (), "self-hosted": ("self-hosted", "gpu")}.get(gpu_runner, (LABEL,))
    runners = ("ubuntu-latest", *gpu)
    trained = plan(project, runners=runners)
    assert trained.jobs["train"] == "success" and trained.jobs["required"] == "success"
    assert decide(project, trained) == (0, "trained and the quality gate passed")
    # No runner for train (a launch that never came up looks the same to GitHub): red.
    if gpu:
        stranded = plan(project)
        assert stranded.jobs["train"] == "no-runner"
        env = stranded.make("required", "required-check")["env"]
        # act leaves a job it could not place without a result (GitHub: failure or cancelled).
        assert env["TRAIN"] != "success"
        rc, said = decide(project, stranded)
        assert rc != 0 and said.startswith("ERROR: train"), said
    for event, reason in (
        (pull_request("someone/fork"), "ERROR: a pull request from a fork gets no secrets"),
        (pull_request(actor="dependabot[bot]"), "ERROR: Dependabot pull requests get no secrets"),
    ):
        skipped = plan(project, event=event, runners=runners)
        assert skipped.jobs["train"] == "skipped" and skipped.jobs["required"] == "success"
        assert not [r for r in skipped.records if r["job"] in {"launch-runner", "train"}]
        rc, said = decide(project, skipped)
        assert rc != 0 and said.startswith(reason), said
    # The gate's own verdict decides once training ran.
    given = trained.make("required", "required-check")["env"]
    env = {**tool_env(VENV), **{name: given.get(name, "") for name in DECISION}, "GATE": "failure"}
    failed = run(["make", "required-check"], cwd=project, env=env, check=False)
    assert failed.returncode != 0 and "quality gate did not pass" in failed.stdout
    # Nothing the model is built from changed (README, tests, deploy files): green at once,
    # whoever asked; without the changes job's answer: red, with the reason.
    for who in ({}, {"FORK": "true"}, {"ACTOR": "dependabot[bot]", "TRAIN": "skipped"}):
        env = {**tool_env(VENV), **{name: given.get(name, "") for name in DECISION}, **who}
        unchanged = run(["make", "required-check"], project, {**env, "CHANGED": "false"}, False)
        assert (unchanged.returncode, unchanged.stdout.strip()) == (
            0,
            "no model inputs changed: nothing to train",
        )
    unknown = run(["make", "required-check"], project, {**env, "CHANGED": ""}, False)
    assert unknown.returncode != 0
    assert unknown.stdout.startswith("ERROR: the changes job did not say"), unknown.stdout


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_rerun_of_failed_jobs_launches_a_runner_for_its_attempt(
    tmp_path: Path, plan: Plan, cloud: str
) -> None:
    """ "Re-run failed jobs" repeats failed jobs and what needs them. Train needs no launch
    (it is queued beside it), and the launch job ends with train's result (runner-watch, run
    for real in the next test), so a failed train always brings its launch along: attempt 2
    launches a machine of its own, and its train takes only that one."""
    project = bake(tmp_path, project="rerun-plan", gpu_runner=f"cloud-{cloud}")
    train = load(project / ".github/workflows/train.yml")["jobs"]["train"]
    assert train["needs"] == "changes"  # never launch-runner
    second = f"cml-gpu-{TAG}-2"
    rerun = plan(project, runners=("ubuntu-latest", second), attempt="2")
    assert rerun.jobs["launch-runner"] == rerun.jobs["train"] == "success"
    launch = rerun.argv("launch-runner", "gpu-runner")
    assert f"--labels={second}" in launch and f"--cloud-metadata=gh-run={TAG}" in launch
    watch = rerun.make("launch-runner", "runner-watch")["env"]
    assert watch["RUN_ATTEMPT"] == "2" and watch["RUNNER_TAG"] == TAG
    assert watch["LAUNCHED"] == "success" and watch["TRAIN_JOB"] == train["name"]
    assert targets(rerun, "launch-runner")[-2:] == ["gpu-runner", "runner-watch"]
    # The first attempt's machine (label ...-1) is never taken by attempt 2's train.
    stale = plan(project, runners=("ubuntu-latest", LABEL), attempt="2")
    assert stale.jobs["train"] == "no-runner" and stale.labels["train"] == ["self-hosted", second]
    # Cleanup still finds every machine of the run: by the run id, whatever the attempt.
    cleanup = rerun.make("cleanup", "gpu-runner-cleanup")
    assert cleanup["env"]["RUNNER_TAG"] == TAG and "gh-run" in cleanup["plan"]


def test_runner_watch_ends_with_train_or_cancels_a_run_no_runner_will_come(
    tmp_path: Path,
) -> None:
    """make runner-watch for real, against a `gh` that answers the job states GitHub would."""
    project = bake(tmp_path, project="watch", gpu_runner="cloud-aws")
    tools = tmp_path / "bin"
    tools.mkdir()
    gh = tools / "gh"
    gh.write_text(
        "#!/usr/bin/env bash\n"
        'printf \'%s\\n\' "$*" >>"$GH_CALLS"\n'
        'if [ "$1 $2" = "run view" ]; then head -n 1 "$GH_STATES"; sed -i 1d "$GH_STATES"; fi\n'
    )
    gh.chmod(0o755)

    def watch(
        states: list[str], launched: str = "success", pickup: int = 30
    ) -> tuple[int, str, list[str]]:
        (tmp_path / "states").write_text("".join(f"{state}\n" for state in states))
        calls = tmp_path / "calls"
        calls.write_text("")
        env = {
            **tool_env(VENV),
            "PATH": f"{tools}:{tool_env(VENV)['PATH']}",
            "GH_STATES": str(tmp_path / "states"),
            "GH_CALLS": str(calls),
        }
        variables = [f"LAUNCHED={launched}", "TRAIN_JOB=train and gate", f"RUNNER_TAG={TAG}"]
        variables += ["RUN_ATTEMPT=2", "WATCH_INTERVAL=0", f"RUNNER_PICKUP_TIMEOUT={pickup}"]
        result = run(["make", "runner-watch", *variables], cwd=project, env=env, check=False)
        return result.returncode, result.stdout.strip(), calls.read_text().splitlines()

    view = f"run view {TAG} --attempt 2 --json jobs --jq "
    view += '.jobs[] | select(.name == "train and gate") | "\\(.status) \\(.conclusion)"'
    # Queued, picked up, then failed: the launch job fails with it (and so is re-run with it).
    rc, said, calls = watch(["queued ", "in_progress ", "completed failure"])
    assert rc != 0 and said.splitlines()[-1].startswith("ERROR: train and gate: failure."), said
    assert calls == [view] * 3
    rc, said, calls = watch(["", "in_progress ", "completed success"])
    assert (rc, said.splitlines()[-1]) == (0, "train and gate: success")
    # No machine: the run is cancelled at once instead of leaving train queued for 24 hours.
    rc, said, calls = watch([], launched="failure")
    assert rc != 0 and calls == [f"run cancel {TAG}"]
    assert said.startswith("ERROR: no runner was launched (make gpu-runner: failure)"), said
    # A machine that never picks up training: cancelled after RUNNER_PICKUP_TIMEOUT.
    rc, said, calls = watch(["queued "], pickup=1)
    assert rc != 0 and calls[-1] == f"run cancel {TAG}" and calls[:-1] == [view] * len(calls[:-1])
    assert said.startswith("ERROR: no runner picked up 'train and gate' within 1 s"), said


@pytest.mark.parametrize(
    ("gpu_runner", "remote", "auth"),
    [
        ("cloud-aws", "s3", "aws-actions/configure-aws-credentials"),
        ("cloud-gcp", "gcs", "google-github-actions/auth"),
        ("cloud-azure", "azure", "make azure-token"),
    ],
)
def test_credentials_are_requested_again_right_before_push(
    tmp_path: Path, plan: Plan, gpu_runner: str, remote: str, auth: str
) -> None:
    project = bake(tmp_path, project="push-plan", gpu_runner=gpu_runner, dvc_remote=remote)

    def train_steps(planned: ActRun) -> list[str]:
        order = []
        for record in planned.records:
            if record["job"] != "train":
                continue
            if record["kind"] == "action":
                order.append(record["action"])
            elif record["kind"] == "make":
                order.append("make " + " ".join(record["args"]))
        return order

    # A pull request keeps nothing: one sign-in, no push. The merged commit pushes.
    previewed = train_steps(plan(project, runners=("ubuntu-latest", LABEL)))
    assert previewed.count(auth) == 1 and "make push" not in previewed, previewed
    planned = plan(project, event=push(), runners=("ubuntu-latest", LABEL))
    order = train_steps(planned)
    assert order.count(auth) == 2, order
    assert order.index(auth) < order.index("make pull") < order.index("make gate")
    assert order[order.index("make push") - 1] == auth, order
    if remote == "s3":
        fresh = [r for r in planned.actions(auth) if r["job"] == "train"][-1]
        assert fresh["with"]["role-duration-seconds"] == "3600"


def test_empty_variables_fail_in_the_step_that_needs_them(tmp_path: Path, plan: Plan) -> None:
    project = bake(tmp_path, project="vars-plan", gpu_runner="cloud-aws", mlflow_tracking="server")
    planned = plan(project, runners=("ubuntu-latest", LABEL))
    # Before anything else: the launch checks its cloud variable, train its tracking server.
    assert targets(planned, "launch-runner")[0] == "require"
    assert planned.make("launch-runner", "require")["env"]["REQUIRED_VARS"] == "AWS_ROLE_ARN"
    assert targets(planned, "train")[0] == "require"
    assert planned.make("train", "require")["env"]["REQUIRED_VARS"] == "MLFLOW_TRACKING_URI"

    def make(*args: str, **env: str) -> tuple[int, str]:
        result = run(["make", *args], cwd=project, env={**tool_env(VENV), **env}, check=False)
        return result.returncode, (result.stdout + result.stderr).strip()

    rc, said = make("require", "REQUIRED_VARS=MLFLOW_TRACKING_URI", MLFLOW_TRACKING_URI="")
    assert rc != 0 and said.splitlines()[0] == (
        "ERROR: MLFLOW_TRACKING_URI is empty: "
        "set it in Settings > Secrets and variables > Actions > Variables"
    )
    assert (
        make("require", "REQUIRED_VARS=AWS_ROLE_ARN", AWS_ROLE_ARN="arn:aws:iam::1:role/r")[0] == 0
    )
    rc, said = make("require", "REQUIRED_SECRETS=AZURE_CLIENT_SECRET", AZURE_CLIENT_SECRET="")
    assert rc != 0 and said.splitlines()[0].endswith("Actions > Secrets"), said
    # An empty registration token stops the launch before CML runs (CML=false would fail too).
    rc, said = make("gpu-runner", "CML=false", REPO_TOKEN="")
    assert rc != 0 and said.startswith("ERROR: REPO_TOKEN is empty: set the variable "), said


def test_an_unreachable_tracking_server_stops_make_repro_before_anything_is_written(
    tmp_path: Path,
) -> None:
    project = bake(tmp_path, project="preflight", mlflow_tracking="server")
    uri = "http://127.0.0.1:9"  # nothing listens on the discard port
    env = {**tool_env(VENV), "PYTHONPATH": str(project / "src"), "MLFLOW_TRACKING_URI": uri}
    result = run(["make", "repro", f"VENV={VENV}"], project, env, check=False)
    said = (result.stdout + result.stderr).strip()
    assert result.returncode != 0 and "Traceback" not in said
    assert said.splitlines()[0].startswith(
        f"ERROR: the MLflow tracking server {uri} (from the environment variable "
        "MLFLOW_TRACKING_URI) does not answer"
    ), said
    assert not (project / "data" / "raw" / "churn.csv").exists()  # not even the data


def test_retraining_pull_requests_start_their_checks_and_come_from_the_default_branch(
    bakes,
) -> None:
    """A pull request opened with github.token starts no workflows: retrain.yml opens it with a
    GitHub App's token minted in the job, or a named secret, and stops naming both without."""
    _, project = bakes["defaults"]
    job = load(project / ".github/workflows/retrain.yml")["jobs"]["pull-request"]
    assert job["permissions"] == {"contents": "read"} and job["environment"] == "retrain-pr"
    [minted] = [s for s in job["steps"] if "create-github-app-token" in s.get("uses", "")]
    assert minted["if"] == "vars.RETRAIN_APP_CLIENT_ID != ''"
    assert minted["with"]["permission-contents"] == "write"
    assert minted["with"]["permission-pull-requests"] == "write"
    [opened] = [s for s in job["steps"] if s.get("run") == "make retrain-pr"]
    token = opened["env"]["GH_TOKEN"]
    assert token == "${{ steps.app-token.outputs.token || secrets.RETRAIN_PR_TOKEN }}"
    assert "github.token" not in json.dumps(job)

    def retrain_pr(**env: str) -> tuple[int, str]:
        result = run(["make", "retrain-pr"], project, {**tool_env(VENV), **env}, check=False)
        return result.returncode, result.stdout.strip()

    rc, said = retrain_pr(GH_TOKEN="")
    assert rc != 0 and said.startswith("ERROR: no token that starts the pull request's checks")
    assert all(name in said for name in ("RETRAIN_APP_CLIENT_ID", "RETRAIN_PR_TOKEN"))
    rc, said = retrain_pr(GH_TOKEN="t", GITHUB_REF="refs/heads/feature", DEFAULT_BRANCH="main")
    assert rc != 0 and said == (
        "ERROR: retraining opens pull requests only from the default branch main; this run is "
        "on refs/heads/feature: run retrain.yml on main"
    )


@pytest.mark.parametrize("bake_id", bake_ids())
def test_pull_request_code_reaches_no_secret_that_changes_settings_tags_or_the_model(
    bakes, bake_id: str
) -> None:
    """What a branch's workflow edit could read on a pull request: no registry token (a pull
    request registers in its own job's store), no write token, and the runner-registration key
    only behind the gpu-runner environment, whose reviewers approve each launch."""
    answers, project = bakes[bake_id]
    train = load(project / ".github/workflows/train.yml")["jobs"]["train"]
    if "environment" in train:
        assert train["environment"] == (
            "${{ github.event_name == 'pull_request' && 'training' || 'release' }}"
        )
    if answers.get("mlflow_tracking") == "server":
        assert train["env"]["MLFLOW_TRACKING_URI"] == (
            "${{ github.event_name == 'pull_request' && 'sqlite:///mlflow.db' "
            "|| vars.MLFLOW_TRACKING_URI }}"
        )
    assert "write" not in train["permissions"].values() or train["permissions"] == {
        "contents": "read",
        "id-token": "write",  # the DVC remote's role, which its environment names
    }
    for path in project.glob(".github/workflows/*.yml"):
        for job_id, job in load(path)["jobs"].items():
            text = json.dumps(job)
            if "RUNNER_APP_PRIVATE_KEY" in text or "PERSONAL_ACCESS_TOKEN" in text:
                assert job["environment"] == "gpu-runner", f"{path.name}/{job_id}"


# --- the one pin table ---------------------------------------------------------------------

RECORDED_LS_REMOTE = ROOT / "tests" / "data" / "ls-remote-create-github-app-token.txt"


def test_template_ci_takes_its_pins_from_the_table() -> None:
    text = (ROOT / ".github/workflows/ci.yml").read_text()
    used = USES_LINE.findall(text)
    assert used and all(PIN_TABLE[action] == (sha, tag) for action, sha, tag in used), used
    assert pins.rewrite_uses(text, PIN_TABLE) == text


def test_every_uses_line_of_the_template_is_a_full_pin_from_the_table() -> None:
    """Unrendered files too: GitHub's pin audits and Dependabot read them as they are."""
    for path in pins.pinned_files():
        for line in path.read_text().splitlines():
            if re.match(r"\s*(- )?uses:", line) and "./" not in line:
                found = USES_LINE.search(line)
                assert found, f"{path.name}: {line.strip()}"
                assert PIN_TABLE.get(found[1]) == (found[2], found[3]), f"{path.name}: {line}"


def test_make_pins_picks_the_newest_release_from_ls_remote() -> None:
    """`git ls-remote --tags` of actions/create-github-app-token, recorded: floating v3 and
    -beta tags are not releases; the newest vX.Y.Z is the table's pin."""
    recorded = RECORDED_LS_REMOTE.read_text()
    assert pins.newest_release(recorded) == PIN_TABLE["actions/create-github-app-token"]
    # An annotated tag: the peeled line names the commit, whatever the order.
    annotated = "a" * 40 + "\trefs/tags/v9.0.0\n" + "b" * 40 + "\trefs/tags/v9.0.0^{}\n"
    assert pins.newest_release(recorded + annotated) == ("b" * 40, "v9.0.0")
    assert pins.newest_release("c" * 40 + "\trefs/tags/v10.0.0\n" + annotated)[1] == "v10.0.0"
    with pytest.raises(ValueError, match=r"no vX\.Y\.Z release tag"):
        pins.newest_release("d" * 40 + "\trefs/tags/v3\n")
    # The rewrite touches only the moved action's row.
    text = pins.TABLE.read_text()
    moved = {"actions/checkout": ("e" * 40, "v8.0.0")}
    rewritten = pins.rewrite_table(text, moved)
    assert pins.read_table(rewritten) == {**PIN_TABLE, **moved}
    assert len(rewritten.splitlines()) == len(text.splitlines())
