"""deploy.yml for both deploy targets, and the make targets it calls, up to the cloud boundary.

Structure: job order, least privilege (only the image job may push and sign), credentials only
in jobs with an environment, where the canary runs. Behaviour: the make targets run for real
with `docker`, `kubectl`, `aws`, `gcloud`, `az` and `kubelogin` replaced by stubs on PATH that
record their exact arguments (none of them can reach a registry or a cluster here); the
Python parts (the release overlay, the timeout from params.yaml) are the real ones.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from bakery import bake, run, tool_env

VENV = Path(sys.prefix)
DIGEST = "sha256:" + "c0ffee" * 10 + "abcd"
IMAGE = f"ghcr.io/acme/churn-model@{DIGEST}"
PUSH_AND_SIGN = {"packages": "write", "id-token": "write", "attestations": "write"}


@pytest.fixture(scope="module", params=["local", "kubernetes"])
def baked(request: pytest.FixtureRequest, tmp_path_factory) -> tuple[str, Path]:
    target = request.param
    project = bake(tmp_path_factory.mktemp(f"deploy-{target}"), deploy=target, dvc_remote="s3")
    return target, project


def workflow(project: Path) -> dict[str, Any]:
    data = yaml.safe_load((project / ".github/workflows/deploy.yml").read_text())
    data["on"] = data.pop(True)
    return data


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_triggers_order_and_one_deploy_at_a_time(baked) -> None:
    _, project = baked
    flow = workflow(project)
    assert set(flow["on"]) == {"push", "workflow_dispatch"}
    assert flow["on"]["push"]["branches"] == ["main"]
    assert flow["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    jobs = flow["jobs"]
    assert list(jobs) == ["gate", "image", "canary", "champion"]
    assert jobs["image"]["needs"] == "gate" and jobs["canary"]["needs"] == "image"
    assert jobs["champion"]["needs"] == "canary"
    assert jobs["champion"]["if"] == "${{ needs.canary.outputs.promoted == 'true' }}"


def test_only_the_image_job_pushes_and_signs(baked) -> None:
    target, project = baked
    jobs = workflow(project)["jobs"]
    assert jobs["gate"]["permissions"] == {"contents": "read"}
    assert jobs["image"]["permissions"] == {"contents": "read", **PUSH_AND_SIGN}
    canary = {"contents": "read"}
    if target == "kubernetes":
        canary["id-token"] = "write"  # cluster credentials through OIDC
    assert jobs["canary"]["permissions"] == canary
    # Only the job that runs git alone may write: it pushes the champion tag, nothing else.
    assert jobs["champion"]["permissions"] == {"contents": "write"}
    assert runs(jobs["champion"]) == ["make champion-push"]
    assert workflow(project)["permissions"] == {}


def test_credentials_only_in_jobs_with_an_environment(baked) -> None:
    _, project = baked
    for name, job in workflow(project)["jobs"].items():
        text = json.dumps(job)
        credentialed = any(marker in text for marker in ("secrets.", "github.token", "id-token"))
        if credentialed:
            assert "environment" in job, f"{name} uses credentials outside an environment"
    jobs = workflow(project)["jobs"]
    assert "environment" not in jobs["gate"]
    assert jobs["image"]["environment"] == "image"
    assert jobs["canary"]["environment"] == "production"
    assert jobs["champion"]["environment"] == "champion"


def test_gate_compares_the_merged_commit_with_its_parent(baked) -> None:
    _, project = baked
    gate = workflow(project)["jobs"]["gate"]
    assert runs(gate) == ["make gate"]
    assert gate["env"]["BASE"] == "HEAD~1"
    checkout = next(s for s in gate["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 2


def test_image_is_built_from_the_gated_model_and_attested_by_digest(baked) -> None:
    _, project = baked
    image = workflow(project)["jobs"]["image"]
    assert runs(image) == ["make pull", "make repro", "make build", "make image-push"]
    assert image["env"]["MODEL_DIR"] == "models/model"
    order = uses(image)
    assert order.index("docker/login-action") < order.index("actions/attest-build-provenance")
    attest = next(s for s in image["steps"] if "attest-build-provenance" in s.get("uses", ""))
    assert attest["with"] == {
        "subject-name": "${{ steps.push.outputs.name }}",
        "subject-digest": "${{ steps.push.outputs.digest }}",
        "push-to-registry": True,
    }
    assert image["outputs"]["image"] == "${{ steps.push.outputs.image }}"


def test_canary_runs_where_the_target_says(baked) -> None:
    target, project = baked
    canary = workflow(project)["jobs"]["canary"]
    if target == "local":
        assert "SERVING_RUNNER_LABELS" in canary["runs-on"]
        assert '["self-hosted", "serving"]' in canary["runs-on"]
        assert runs(canary) == ["make canary", "make champion-bundle"]
        return
    assert canary["runs-on"] == "ubuntu-latest"
    assert canary["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    assert runs(canary) == [
        "make pull",
        "make repro",
        "make kube-credentials",
        "make argo-rollouts-plugin",
        "make rollout",
        "make rollout-summary",
        "make rollback",
        "make promote",
        "make champion-bundle",
    ]
    logins = {
        s["uses"].split("@")[0]: s["if"]
        for s in canary["steps"]
        if "if" in s and "uses" in s and "artifact" not in s["uses"]
    }
    assert logins == {
        "aws-actions/configure-aws-credentials": "vars.K8S_CLOUD == 'aws'",
        "google-github-actions/auth": "vars.K8S_CLOUD == 'gcp'",
        "azure/login": "vars.K8S_CLOUD == 'azure'",
    }
    by_run = {s.get("run"): s for s in canary["steps"]}
    assert "failure()" in by_run["make rollback"]["if"]
    assert "!cancelled()" in by_run["make rollout-summary"]["if"]
    assert by_run["make promote"]["env"] == {"APPROVED_BY": "canary"}
    assert "if" not in by_run["make promote"]  # runs only when every step before passed


# --- the make targets, with recording stubs at the boundary ----------------------------------


def stubs(directory: Path, scripts: dict[str, str]) -> Path:
    """Executables that append their argv (one JSON list per line) to calls.jsonl, then run
    `body` (shell) to answer."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "calls.jsonl"
    for name, body in scripts.items():
        path = directory / name
        path.write_text(
            "#!/usr/bin/env bash\n"
            f"python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' {name} \"$@\""
            f" >> {log}\n{body}\n"
        )
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def make(project: Path, stub_dir: Path, *args: str, **env: str):
    path = f"{stub_dir}{os.pathsep}{VENV / 'bin'}{os.pathsep}/usr/bin:/bin"
    # The baked package runs from its source tree (it is not installed in the template's venv).
    environment = tool_env(VENV, {"PATH": path, "PYTHONPATH": str(project / "src"), **env})
    return run(["make", *args, f"VENV={VENV}"], cwd=project, env=environment, check=False)


@pytest.fixture(scope="module")
def kubernetes_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("deploy-targets"), deploy="kubernetes")


def test_rollout_applies_the_pushed_digest_and_waits_for_the_verdict(
    kubernetes_project: Path, tmp_path: Path
) -> None:
    log = stubs(tmp_path / "bin", {"kubectl": "exit 0"})
    result = make(kubernetes_project, tmp_path / "bin", "rollout", f"IMAGE={IMAGE}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(log) == [
        ["kubectl", "config", "current-context"],
        ["kubectl", "apply", "-k", "build/k8s-release"],
        ["kubectl", "argo", "rollouts", "status", "churn-model", "--timeout", "900s"],
    ]
    overlay = yaml.safe_load(
        (kubernetes_project / "build/k8s-release/kustomization.yaml").read_text()
    )
    assert overlay["images"][0]["digest"] == DIGEST
    assert overlay["resources"] == ["../../deploy/k8s"]


def test_a_failed_verdict_fails_the_rollout(kubernetes_project: Path, tmp_path: Path) -> None:
    # `kubectl argo rollouts status` exits 1 when the rollout ends Degraded (analysis failed).
    body = '[ "$1 $2 $3" = "argo rollouts status" ] && { echo "Degraded"; exit 1; }; exit 0'
    stubs(tmp_path / "bin", {"kubectl": body})
    result = make(kubernetes_project, tmp_path / "bin", "rollout", f"IMAGE={IMAGE}")
    assert result.returncode != 0 and "Degraded" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "ERROR: IMAGE is empty"),
        (["IMAGE=ghcr.io/Acme/x:latest!"], "is not an image reference"),
    ],
)
def test_rollout_refuses_a_missing_or_bad_image_before_the_cluster(
    kubernetes_project: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    log = stubs(tmp_path / "bin", {"kubectl": "exit 0"})
    result = make(kubernetes_project, tmp_path / "bin", "rollout", *args)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert ["kubectl", "apply", "-k", "build/k8s-release"] not in calls(log)


def test_rollout_without_a_cluster_context_says_how_to_get_one(
    kubernetes_project: Path, tmp_path: Path
) -> None:
    stubs(tmp_path / "bin", {"kubectl": "exit 1"})
    result = make(kubernetes_project, tmp_path / "bin", "rollout", f"IMAGE={IMAGE}")
    assert result.returncode != 0
    assert "ERROR: kubectl has no current context" in result.stdout


def test_rollback_aborts_and_restores_the_stable_image(
    kubernetes_project: Path, tmp_path: Path
) -> None:
    stable_image = f"ghcr.io/acme/churn-model@sha256:{'1' * 64}"
    body = (
        'case "$*" in\n'
        '  "get rollout churn-model -o jsonpath={.status.stableRS}") echo -n 7d9f8c6b5;;\n'
        f'  "get replicaset churn-model-7d9f8c6b5 -o jsonpath="*) echo -n {stable_image};;\n'
        "esac"
    )
    log = stubs(tmp_path / "bin", {"kubectl": body})
    result = make(kubernetes_project, tmp_path / "bin", "rollback")
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = calls(log)
    assert recorded[1] == ["kubectl", "argo", "rollouts", "abort", "churn-model"]
    assert [
        "kubectl",
        "set",
        "image",
        "deployment/churn-model",
        f"bento={stable_image}",
    ] in recorded
    assert recorded[-1][:5] == ["kubectl", "argo", "rollouts", "status", "churn-model"]


@pytest.mark.parametrize(
    ("cloud", "variables", "expected"),
    [
        (
            "aws",
            {"CLUSTER_LOCATION": "eu-west-1"},
            [["aws", "eks", "update-kubeconfig", "--name", "prod", "--region", "eu-west-1"]],
        ),
        (
            "gcp",
            {"CLUSTER_LOCATION": "europe-west1"},
            [
                [
                    "gcloud", "container", "clusters", "get-credentials", "prod",
                    "--location", "europe-west1",
                ]
            ],
        ),
        (
            "azure",
            {"CLUSTER_RESOURCE_GROUP": "ml-prod"},
            [
                [
                    "az", "aks", "get-credentials", "--name", "prod",
                    "--resource-group", "ml-prod", "--overwrite-existing",
                ],
                ["kubelogin", "convert-kubeconfig", "-l", "azurecli"],
            ],
        ),
    ],
)  # fmt: skip
def test_kube_credentials_per_cloud(
    kubernetes_project: Path, tmp_path: Path, cloud: str, variables: dict, expected: list
) -> None:
    log = stubs(tmp_path / "bin", {name: "exit 0" for name in ("aws", "gcloud", "az", "kubelogin")})
    env = {"K8S_CLOUD": cloud, "CLUSTER_NAME": "prod", **variables}
    result = make(kubernetes_project, tmp_path / "bin", "kube-credentials", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(log) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"K8S_CLOUD": "aws"}, "ERROR: CLUSTER_NAME is empty"),
        ({"K8S_CLOUD": "", "CLUSTER_NAME": "prod"}, "ERROR: K8S_CLOUD is ''"),
    ],
)
def test_kube_credentials_name_the_missing_variable(
    kubernetes_project: Path, tmp_path: Path, env: dict, message: str
) -> None:
    log = stubs(tmp_path / "bin", {name: "exit 0" for name in ("aws", "gcloud", "az")})
    result = make(kubernetes_project, tmp_path / "bin", "kube-credentials", **env)
    assert result.returncode != 0 and message in result.stdout
    assert calls(log) == []


def test_image_push_names_the_lowercased_image_and_hands_on_its_digest(
    baked, tmp_path: Path
) -> None:
    _, project = baked
    push_output = f"abc123: Pushed\\n0123abc: digest: {DIGEST} size: 2417"
    log = stubs(
        tmp_path / "bin",
        {"docker": f'[ "$1" = push ] && printf "{push_output}\\n"; exit 0', "bentoml": "exit 0"},
    )
    outputs = tmp_path / "github_output"
    result = make(
        project,
        tmp_path / "bin",
        "image-push",
        f"BIN={tmp_path / 'bin'}",
        IMAGE_REPO="ghcr.io/Acme/Churn-Model",
        IMAGE_TAG="4f2a9c",
        GITHUB_OUTPUT=str(outputs),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    name = "ghcr.io/acme/churn-model"
    recorded = calls(log)
    assert ["bentoml", "containerize", "churn-model:latest", "--image-tag", f"{name}:4f2a9c"] in (
        recorded
    )
    assert ["docker", "push", f"{name}:4f2a9c"] in recorded
    assert outputs.read_text().splitlines() == [
        f"name={name}",
        f"digest={DIGEST}",
        f"image={name}@{DIGEST}",
    ]


# --- the champion tag: made by promote() in the canary job, pushed by the champion job --------


def git(cwd: Path, *args: str) -> str:
    return run(
        ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args], cwd=cwd
    ).stdout


def test_the_champion_tag_travels_as_a_bundle_and_is_pushed(baked, tmp_path: Path) -> None:
    _, project = baked
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], cwd=tmp_path)
    work = tmp_path / "canary-job"
    run(["cp", "-r", str(project), str(work)], cwd=tmp_path)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "base")
    (work / "metrics.json").write_text("{}\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "merged model")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
    stub_dir = tmp_path / "bin"
    log = stubs(stub_dir, {"gh": "exit 0"})

    # Nothing promoted: no bundle, and the champion job is skipped (promoted=false).
    outputs = tmp_path / "out-none"
    result = make(work, stub_dir, "champion-bundle", GITHUB_OUTPUT=str(outputs))
    assert result.returncode == 0 and outputs.read_text() == "promoted=false\n"
    assert not (work / "build/champion.bundle").exists()

    # promote() tagged HEAD: the bundle holds the tag and the objects beyond HEAD's parent.
    git(work, "tag", "-a", "champion-20261130T2300Z", "-m", "v3 approved by canary")
    outputs = tmp_path / "out-tag"
    result = make(work, stub_dir, "champion-bundle", GITHUB_OUTPUT=str(outputs))
    assert result.returncode == 0 and outputs.read_text() == "promoted=true\n"

    # The champion job: a fresh depth-2 checkout of main, the bundle downloaded into build/.
    job = tmp_path / "champion-job"
    clone = ["git", "clone", "-q", "--depth", "2", "--branch", "main", f"file://{origin}"]
    run([*clone, str(job)], cwd=tmp_path)
    (job / "build").mkdir(exist_ok=True)
    run(["cp", str(work / "build/champion.bundle"), str(job / "build")], cwd=tmp_path)
    result = make(job, stub_dir, "champion-push", GH_TOKEN="token-from-the-environment")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(log) == [["gh", "auth", "setup-git"]]
    pushed = run(["git", "tag", "-n1", "--list", "champion-*"], cwd=origin).stdout
    assert "champion-20261130T2300Z" in pushed and "approved by canary" in pushed
    tagged = run(["git", "rev-list", "-n1", "champion-20261130T2300Z"], cwd=origin).stdout
    assert tagged == git(work, "rev-parse", "HEAD")


def test_champion_push_without_a_token_says_so(baked, tmp_path: Path) -> None:
    _, project = baked
    stub_dir = tmp_path / "bin"
    log = stubs(stub_dir, {"gh": "exit 0"})
    (tmp_path / "job").mkdir()
    run(["cp", "-r", f"{project}/.", str(tmp_path / "job")], cwd=tmp_path)
    (tmp_path / "job" / "build").mkdir(exist_ok=True)
    (tmp_path / "job" / "build" / "champion.bundle").write_text("")
    result = make(tmp_path / "job", stub_dir, "champion-push", GH_TOKEN="")
    assert result.returncode != 0 and "ERROR: GH_TOKEN is empty" in result.stdout
    assert calls(log) == []
