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
import shutil
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
    assert jobs["image"]["if"] == "needs.gate.outputs.changed == 'true'"
    # Decided before any traffic moves: a release that would not be promoted is not rolled out.
    assert jobs["canary"]["if"] == "needs.image.outputs.promote == 'true'"
    assert jobs["champion"]["needs"] == ["image", "canary"] and "if" not in jobs["champion"]


def test_only_the_image_job_pushes_and_signs(baked) -> None:
    target, project = baked
    jobs = workflow(project)["jobs"]
    assert jobs["gate"]["permissions"] == {"contents": "read", "actions": "read"}
    signs = {"id-token": "write", "attestations": "write"}
    if target == "kubernetes":
        signs["packages"] = "write"
    assert jobs["image"]["permissions"] == {"contents": "read", **signs}
    canary = {"contents": "read", "attestations": "read"}
    if target == "kubernetes":
        canary["id-token"] = "write"  # cluster credentials through OIDC
    assert jobs["canary"]["permissions"] == canary
    # Only the job that records the champion may write: it pushes the champion tag.
    assert jobs["champion"]["permissions"] == {"contents": "write"}
    assert runs(jobs["champion"]) == [
        "make release-commit",
        "make release-promote",
        "make champion-push",
    ]
    assert workflow(project)["permissions"] == {}


def test_credentials_only_in_jobs_with_an_environment(baked) -> None:
    _, project = baked
    for name, job in workflow(project)["jobs"].items():
        writes = "write" in job["permissions"].values()
        if "secrets." in json.dumps(job) or writes:
            assert "environment" in job, f"{name} uses credentials outside an environment"
    jobs = workflow(project)["jobs"]
    assert "environment" not in jobs["gate"]  # github.token that reads the commit's runs only
    assert jobs["image"]["environment"] == "image"
    assert jobs["canary"]["environment"] == "production"
    assert jobs["champion"]["environment"] == "champion"


def test_gate_compares_the_merged_commit_with_its_parent(baked) -> None:
    """The gate waits for the commit's own CI runs, then compares its model inputs with the
    commit before the push: nothing changed, nothing deploys."""
    _, project = baked
    gate = workflow(project)["jobs"]["gate"]
    assert runs(gate) == ["make ci-wait", "make model-inputs-changed"]
    assert gate["env"]["BASE"] == "${{ github.event.before }}"
    assert gate["outputs"]["changed"] == "${{ steps.changes.outputs.changed }}"
    checkout = next(s for s in gate["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0


def test_image_is_built_from_the_gated_model_and_attested_by_digest(baked) -> None:
    target, project = baked
    jobs = workflow(project)["jobs"]
    image = jobs["image"]
    expected = ["make release-outputs", "make release-decide", "make release-bento"]
    if target == "kubernetes":
        expected.append("make image-push")
    assert runs(image) == expected
    # Deploys never retrain, in any job.
    assert not any("repro" in step for job in jobs.values() for step in runs(job))
    restored = [s for s in image["steps"] if s.get("uses", "").startswith("actions/cache/restore@")]
    assert restored[-1]["with"] == {"path": "build/release", "key": "release-${{ github.sha }}"}
    by_name = {s.get("name"): s for s in image["steps"]}
    attest = by_name["Attest the bento file"]
    assert attest["with"] == {"subject-path": "build/bento/*.bento"}
    assert "vars.ATTESTATION != 'off'" in attest["if"]
    uploaded = by_name["Upload the release (bento file, its holdout, the decision)"]
    assert uploaded["with"]["name"] == "release"
    assert image["outputs"]["promote"] == "${{ steps.decide.outputs.promote }}"
    if target == "kubernetes":
        steps = [s.get("name") or s.get("uses", "").split("@")[0] for s in image["steps"]]
        pushed = steps.index("make image-push")
        assert steps.index("docker/login-action") < pushed < steps.index("Attest the image")
        assert by_name["Attest the image"]["with"] == {
            "subject-name": "${{ steps.push.outputs.name }}",
            "subject-digest": "${{ steps.push.outputs.digest }}",
            "push-to-registry": True,
        }
        assert image["outputs"]["image"] == "${{ steps.push.outputs.image }}"


def test_canary_runs_where_the_target_says(baked) -> None:
    target, project = baked
    canary = workflow(project)["jobs"]["canary"]
    by_run = {s.get("run"): s for s in canary["steps"]}
    assert canary["env"]["DEFAULT_BRANCH"] == "${{ github.event.repository.default_branch }}"
    assert canary["env"]["ATTESTATION"] == "${{ vars.ATTESTATION }}"
    if target == "local":
        assert "SERVING_RUNNER_LABELS" in canary["runs-on"]
        assert '["self-hosted", "serving"]' in canary["runs-on"]
        assert runs(canary) == [
            "make attestation-verify",
            "make release-canary",
            "make release-rollback",
        ]
        assert by_run["make release-rollback"]["if"] == "${{ cancelled() || failure() }}"
        return
    assert canary["runs-on"] == "ubuntu-latest"
    assert canary["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    assert runs(canary) == [
        "make attestation-verify",
        "make kube-credentials",
        "make argo-rollouts-plugin",
        "make rollout",
        "make rollout-summary",
        "make rollback",
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
        # What kubectl needs there, pinned: GKE's auth plugin, AKS's kubelogin.
        "google-github-actions/setup-gcloud": "vars.K8S_CLOUD == 'gcp'",
        "Azure/use-kubelogin": "vars.K8S_CLOUD == 'azure'",
    }
    plugins = {s["uses"].split("@")[0]: s["with"] for s in canary["steps"] if "with" in s}
    assert plugins["google-github-actions/setup-gcloud"] == {
        "install_components": "gke-gcloud-auth-plugin"
    }
    assert plugins["Azure/use-kubelogin"]["kubelogin-version"].startswith("v")
    # A failed analysis, a cancelled run and a timeout all roll back.
    assert by_run["make rollback"]["if"] == (
        "${{ (cancelled() || failure()) && steps.rollout.outcome != 'skipped' }}"
    )
    assert "!cancelled()" in by_run["make rollout-summary"]["if"]


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


# --- the champion tag: made by release-promote, pushed by the same job --------------------------


def git(cwd: Path, *args: str) -> str:
    return run(
        ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args], cwd=cwd
    ).stdout


def test_the_champion_tag_on_the_release_commit_is_pushed(baked, tmp_path: Path) -> None:
    """promote() tags HEAD, the release commit (the merged commit plus its pipeline's record):
    champion-push sends that tag, and with it the commit, to origin; no tag, no push."""
    _, project = baked
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], cwd=tmp_path)
    work = tmp_path / "champion-job"
    run(["cp", "-r", str(project), str(work)], cwd=tmp_path)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "merged")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
    (work / "metrics.json").write_text("{}\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "Release record")
    stub_dir = tmp_path / "bin"
    log = stubs(stub_dir, {"gh": "exit 0"})

    result = make(work, stub_dir, "champion-push", GH_TOKEN="token-from-the-environment")
    assert result.returncode != 0
    assert result.stdout.startswith("ERROR: no champion-* tag on HEAD"), result.stdout
    assert calls(log) == []

    git(work, "tag", "-a", "champion-20261130-230000", "-m", '{"version": "3"}')
    result = make(work, stub_dir, "champion-push", GH_TOKEN="token-from-the-environment")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(log) == [["gh", "auth", "setup-git"]]
    pushed = run(["git", "tag", "-n1", "--list", "champion-*"], cwd=origin).stdout
    assert "champion-20261130-230000" in pushed
    tagged = run(["git", "rev-list", "-n1", "champion-20261130-230000"], cwd=origin).stdout
    assert tagged == git(work, "rev-parse", "HEAD")  # the release commit travelled with it
    assert "metrics.json" in run(["git", "show", "--stat", tagged.strip()], cwd=origin).stdout


def test_champion_push_without_a_token_says_so(baked, tmp_path: Path) -> None:
    _, project = baked
    stub_dir = tmp_path / "bin"
    log = stubs(stub_dir, {"gh": "exit 0"})
    (tmp_path / "job").mkdir()
    run(["cp", "-r", f"{project}/.", str(tmp_path / "job")], cwd=tmp_path)
    result = make(tmp_path / "job", stub_dir, "champion-push", GH_TOKEN="")
    assert result.returncode != 0 and "ERROR: GH_TOKEN is empty" in result.stdout
    assert calls(log) == []


# --- deploy trusts CI: the commit's own runs, and the attestation before traffic moves --------

SHA = "4f2a9c" + "0" * 34
RUNS_VIEW = f"repos/acme/churn/actions/runs?head_sha={SHA}&event=push&per_page=100"


def ci_wait(project: Path, tmp_path: Path, answers: list[str], **env: str):
    """`make ci-wait` against a gh that answers GitHub's runs of the commit, one answer per call
    (the last one repeats)."""
    (tmp_path / "answers").write_text("\n---\n".join(answers))
    body = (
        "python3 - \"$@\" <<'PY'\n"
        "import pathlib, sys\n"
        f"store = pathlib.Path({str(tmp_path / 'answers')!r})\n"
        "answers = store.read_text().split('\\n---\\n')\n"
        "print(answers[0])\n"
        "store.write_text('\\n---\\n'.join(answers[1:] or answers))\n"
        "PY"
    )
    log = stubs(tmp_path / "bin", {"gh": body})
    log.unlink(missing_ok=True)
    variables = {"GH_TOKEN": "t", "GH_REPO": "acme/churn", "SHA": SHA, "CI_WAIT_INTERVAL": "0"}
    result = make(project, tmp_path / "bin", "ci-wait", **{**variables, **env})
    return result, calls(log)


def test_deploy_waits_for_the_commits_own_ci_and_stops_when_it_failed(
    kubernetes_project: Path, tmp_path: Path
) -> None:
    done = (
        ".github/workflows/ci.yml completed success\n.github/workflows/train.yml completed success"
    )
    running = ".github/workflows/ci.yml completed success\n.github/workflows/train.yml in_progress "
    result, asked = ci_wait(kubernetes_project, tmp_path, ["", running, done])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"waiting for ci.yml train.yml on {SHA}"
    assert lines[1] == f"waiting for train.yml on {SHA}"
    assert lines[-1] == f"ci.yml train.yml passed on {SHA}"
    jq = '.workflow_runs[] | "\\(.path) \\(.status) \\(.conclusion)"'
    assert asked == [["gh", "api", RUNS_VIEW, "--jq", jq]] * 3
    failed = (
        ".github/workflows/ci.yml completed failure\n.github/workflows/train.yml completed success"
    )
    result, _ = ci_wait(kubernetes_project, tmp_path, [failed])
    assert result.returncode != 0
    assert result.stdout.strip() == (
        f"ERROR: ci.yml ended failure on {SHA}: nothing is deployed; fix it and merge again "
        "(or re-run it, then this deploy)"
    )
    result, _ = ci_wait(kubernetes_project, tmp_path, [""], CI_WAIT_SECONDS="0")
    assert result.returncode != 0 and "did not finish" in result.stdout.splitlines()[-1]
    result, asked = ci_wait(kubernetes_project, tmp_path, [done], GH_TOKEN="")
    assert result.stdout.startswith("ERROR: GH_TOKEN is empty") and asked == []


@pytest.mark.parametrize("subject", ["bento", "image"])
def test_the_attestation_is_verified_against_deploy_yml_on_the_default_branch(
    baked, tmp_path: Path, subject: str
) -> None:
    _, project = baked
    log = stubs(tmp_path / "bin", {"gh": "exit 0"})
    env = {"GH_TOKEN": "t", "GH_REPO": "acme/churn", "DEFAULT_BRANCH": "trunk"}
    if subject == "image":
        env["IMAGE"] = IMAGE
        expected = f"oci://{IMAGE}"
    else:
        (project / "build" / "bento").mkdir(parents=True, exist_ok=True)
        (project / "build" / "bento" / "churn-model-0123456789ab.bento").write_bytes(b"bento")
        env["IMAGE"] = ""
        expected = "build/bento/churn-model-0123456789ab.bento"
    result = make(project, tmp_path / "bin", "attestation-verify", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(log) == [
        [
            "gh", "attestation", "verify", expected, "--repo", "acme/churn",
            "--signer-workflow", "acme/churn/.github/workflows/deploy.yml",
            "--source-ref", "refs/heads/trunk",
        ]
    ]  # fmt: skip
    # Where attestations are not available, the repository variable turns both sides off.
    log.unlink()
    result = make(project, tmp_path / "bin", "attestation-verify", **env, ATTESTATION="off")
    assert result.returncode == 0 and calls(log) == []
    assert result.stdout.startswith("ATTESTATION is off (repository variable)")


# --- the serving host's units -----------------------------------------------------------------

PATH_SETTINGS = ("WorkingDirectory", "ReadWritePaths", "EnvironmentFile", "ExecStart")


def test_serving_host_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd expands no variables in path settings (WorkingDirectory=${PROJECT_DIR} is "not
    absolute: unit will not be started"): every path is literal and absolute, and
    `systemd-analyze verify` accepts each unit where systemd is installed."""
    project = bake(tmp_path, deploy="local")
    units = sorted((project / "deploy" / "local").glob("*.service"))
    assert units
    for unit in units:
        for line in unit.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in PATH_SETTINGS:
                path = value.lstrip("-")
                assert "$" not in path and path.startswith("/"), f"{unit.name}: {line}"
        verifier = shutil.which("systemd-analyze")
        if verifier is None:
            continue
        verified = run([verifier, "verify", "--man=no", str(unit)], tmp_path, check=False)
        output = verified.stdout + verified.stderr
        assert verified.returncode == 0 and not output.strip(), f"{unit.name}: {output}"
