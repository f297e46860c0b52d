"""The release cycle, executed: pull request, merge, deploy, champion, retraining, and back.

For a default bake (deploy=local) and a deploy=kubernetes bake, every workflow of the cycle runs
under act (tests/act_runner.py) as GitHub runs it: each run from a fresh clone of a local bare
repository, `origin`, which receives the pushed branches and tags; each job from a copy of that
clone without its ignored files; between runs only what GitHub keeps (origin, the actions cache,
artifacts within a run, the runs' conclusions: tests/github_hub.py). Only docker, attestation,
the cloud CLIs, kubectl and GitHub's API are recorded at the boundary, and answered as a
registry, a cluster or GitHub would. ci.yml is not run again here (tests/test_workflows.py
executes it): GitHub's API reports its conclusion on each commit.

1. a pull request changes a parameter: train.yml trains, reports, gates, `required` is green;
2. merged (main fast-forwards in origin): train.yml trains the merged commit and leaves its
   release; deploy.yml waits for CI, decides, builds the bento once, rolls it out (local: real
   bento servers behind Caddy; kubernetes: kubectl recorded), promotes; the champion tag
   arrives in origin and the stable side serves the merged model;
3. new data: retrain.yml's winning challenger opens a pull request branch in origin; merged, it
   needs no training again, and its deploy promotes it: the stable side serves it;
4. negative paths: the first deploy of that release meets an erroring canary (rolled back: the
   champion tag and the stable side stay; its re-run is step 3's promotion); a worse retraining
   opens no pull request (default bake); a pull request changing only README.md gets
   `required` green without training; a deploy of a commit whose CI failed deploys nothing.

The parameters are shortened for minutes, not hours: canary steps of 2 s on free ports, one
importance repeat, a data source outside the tree (the full data set, or one with its most
telling columns scrambled between rows, or a sample of it), and a score-shift limit the much
better retrained model passes (its scores shift by design).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from act_runner import ActRun, pull_request, push, schedule
from bakery import bake, run, tool_env
from github_hub import VENV, Hub, git_log, kill_family, overlay_venv, record_of, stop_serving_host

SECRETS = {"RETRAIN_PR_TOKEN": "sentinel-retrain-token", "GITHUB_TOKEN": "sentinel-token"}
DEPLOY_JOBS = ["gate", "image", "canary", "champion"]
# Columns the weak data set scrambles between rows: a model of it ranks churn visibly worse.
SCRAMBLED = ["contract", "tenure", "total_charges", "internet_service"]
ROWS = 4000  # of the 7043 the bundled data set has: quicker stages, the same flow
# The kubernetes bake's cluster: GKE, so the job installs the auth plugin kubectl needs there
# and signs in through workload identity (all recorded).
CLUSTER = {
    "K8S_CLOUD": "gcp",
    "CLUSTER_NAME": "prod",
    "CLUSTER_LOCATION": "europe-west1",
    "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/1/locations/global/workloadIdentityPools/gh",
    "GCP_SERVICE_ACCOUNT": "deploy@acme.iam.gserviceaccount.com",
}
# A registry, as far as `bentoml containerize` and `make image-push` ask: the daemon's version,
# and the digest of a pushed tag.
DOCKER_ANSWER = """#!/usr/bin/env bash
case "$1" in
  version) echo '"27.3.1"' ;;
  push) echo "latest: digest: sha256:$(printf %s "$2" | sha256sum | cut -c1-64) size: 1234" ;;
esac
"""
# A cluster, as far as the rollout asks. The analysis of an applied release fails when the test
# wrote Degraded to answers/verdict; a healthy one makes its image the stable ReplicaSet's.
# Setting the Deployment back to the stable image (a rollback) makes the Rollout healthy again.
KUBECTL_ANSWER = """#!/usr/bin/env bash
state="$(dirname "$0")"
case "$*" in
  "config current-context") echo test-cluster ;;
  "apply -k build/k8s-release")
    grep -o 'digest: .*' build/k8s-release/kustomization.yaml | cut -c9- > "$state/applied"
    cp "$state/verdict" "$state/rollout" 2>/dev/null || echo Healthy > "$state/rollout" ;;
  "argo rollouts status "*)
    if [ "$(cat "$state/rollout")" = Degraded ]; then echo Degraded; exit 1; fi
    echo Healthy; mv "$state/applied" "$state/stable" 2>/dev/null || true ;;
  "set image deployment/"*) rm -f "$state/applied"; echo Healthy > "$state/rollout" ;;
  "get rollout "*) echo -n stable-rs ;;
  "get replicaset "*) echo -n "ghcr.io/acme/churn@$(cat "$state/stable" 2>/dev/null)" ;;
esac
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_sources(project: Path, sources: Path) -> None:
    """The raw data the pipeline ingests (params.yaml data.source), outside the tree."""
    env = tool_env(VENV, {"PYTHONPATH": "src"})
    package = project.name.replace("-", "_")
    run([str(VENV / "bin" / "python"), "-m", package, "ingest"], project, env)
    raw = project / "data" / "raw" / "churn.csv"
    frame = pd.read_csv(raw).sample(n=ROWS, random_state=0)
    raw.unlink()
    sources.mkdir(parents=True, exist_ok=True)
    frame.to_csv(sources / "strong.csv", index=False)
    weak = frame.copy()
    for number, column in enumerate(SCRAMBLED):
        weak[column] = weak[column].sample(frac=1, random_state=number).to_numpy()
    weak.to_csv(sources / "weak.csv", index=False)
    # Fewer rows of the same data: worse on any holdout drawn from it than all of them.
    frame.sample(n=1500, random_state=1).to_csv(sources / "fewer.csv", index=False)
    (sources / "current.csv").write_bytes((sources / "weak.csv").read_bytes())


def short_cycle(project: Path, source: Path, target: str) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"]["source"] = str(source)
    params["explain"]["repeats"] = 1
    params["evaluate"]["at_least"]["roc_auc"] = 0.6  # the weak data set's model passes
    if target == "local":
        canary = params["canary"]
        canary.update(steps=[50, 100], interval_seconds=2, min_requests=10, max_score_psi=5.0)
        canary["local"].update(poll_seconds=0.5, max_wait_seconds=20.0, significance=0.001)
        for key in ("front_port", "admin_port", "stable_port", "canary_port"):
            canary["local"][key] = free_port()
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def cycle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    target = request.param
    root = tmp_path_factory.mktemp(f"release-{target}")
    project = bake(root / "bake", deploy=target)
    write_sources(project, root / "sources")
    short_cycle(project, root / "sources" / "current.csv", target)
    hub = Hub(root, project, overlay_venv(root / "venv"))
    if target == "kubernetes":
        for name, text in (("docker", DOCKER_ANSWER), ("kubectl", KUBECTL_ANSWER)):
            (hub.answers / name).write_text(text)
            (hub.answers / name).chmod(0o755)
    yield target, hub, root / "sources"
    stop_serving_host(hub.serving)


pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize(
        "cycle",
        [
            pytest.param(target, marks=pytest.mark.xdist_group(f"release-{target}"))
            for target in ("local", "kubernetes")
        ],
        indirect=True,
    ),
]


def deploy(hub: Hub, target: str, before: str, attempt: str = "1") -> ActRun:
    k8s = target == "kubernetes"
    return hub.run(
        "deploy.yml",
        push(before=before, after=hub.sha("main")),
        "main",
        runners=("ubuntu-latest",) if k8s else ("ubuntu-latest", "serving"),
        attempt=attempt,
        recorders=("docker", "kubectl", "kubectl-argo-rollouts") if k8s else (),
        secrets=SECRETS,
        variables=CLUSTER if k8s else None,
    )


def champion_tags(hub: Hub) -> list[str]:
    return sorted(git_log(hub.origin, "tag", "--list", "champion-*").split())


def served_version(hub: Hub) -> str:
    """What the serving host's front answers with (local target): the stable side's model."""
    state = json.loads((hub.serving / "serving.json").read_text())
    show = ["git", "--git-dir", str(hub.origin), "show", "main:params.yaml"]
    front = yaml.safe_load(run(show, hub.root).stdout)["canary"]["local"]["front_port"]
    assert httpx.get(f"http://127.0.0.1:{state['stable']['port']}/readyz").status_code == 200
    records = pd.read_csv(hub.root / "sources" / "strong.csv").drop(
        columns=["churn", "customer_id"]
    )
    record = json.loads(records.iloc[[0]].to_json(orient="records"))[0]
    answer = httpx.post(f"http://127.0.0.1:{front}/predict", json=record, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["model_version"]


def stable_image(hub: Hub) -> str:
    """The image digest the (recorded) cluster's stable ReplicaSet runs (kubernetes target)."""
    return (hub.answers / "stable").read_text().strip()


def check_deployed(result: ActRun, hub: Hub, target: str, sha: str) -> None:
    """A deploy that promoted: it waited for the commit's CI, never retrained, shipped the bento
    named by its digest, verified its attestation before traffic moved, tagged the champion."""
    assert result.jobs == dict.fromkeys(DEPLOY_JOBS, "success"), result.output[-8000:]
    [asked] = [r["argv"] for r in result.commands("gh") if r["job"] == "gate"]
    assert asked[:2] == [
        "api",
        f"repos/acme/churn/actions/runs?head_sha={sha}&event=push&per_page=100",
    ]
    made = {" ".join(r["args"]) for r in result.records if r["kind"] == "make"}
    assert "repro" not in made and "pull" not in made, "a deploy never retrains"
    # One artifact per release: the bento file named by its digest, with its record.
    store = hub.scratch / "artifacts" / "release"
    [bento] = store.glob("build/bento/*.bento")
    record = json.loads((store / "build" / "bento" / "bento.json").read_text())
    digest = hashlib.sha256(bento.read_bytes()).hexdigest()
    assert record["digest"] == f"sha256:{digest}" and bento.name.endswith(f"-{digest[:12]}.bento")
    assert record["commit"] == sha and (store / "reports" / "promotion.json").exists()
    [verified] = [r["argv"] for r in result.commands("gh") if r["job"] == "canary"]
    expected = f"build/bento/{bento.name}" if target == "local" else "oci://ghcr.io/acme/churn@"
    assert verified[:3] == ["attestation", "verify", verified[2]]
    assert verified[2].startswith(expected), verified
    assert verified[3:] == [
        "--repo", "acme/churn",
        "--signer-workflow", "acme/churn/.github/workflows/deploy.yml",
        "--source-ref", "refs/heads/main",
    ]  # fmt: skip
    assert {"subject-path": "build/bento/*.bento"} in attestations(result)


def attestations(result: ActRun) -> list[dict[str, str]]:
    """The inputs of each attest-build-provenance call (the ones given)."""
    calls = result.actions("actions/attest-build-provenance")
    return [{key: value for key, value in r["with"].items() if value} for r in calls]


def test_release_cycle(cycle) -> None:
    target, hub, sources = cycle

    # 1. A pull request that changes a parameter: trained, reported, gated, `required` green.
    def faster(work: Path) -> None:
        params = work / "params.yaml"
        params.write_text(params.read_text().replace("learning_rate: 0.05", "learning_rate: 0.08"))

    hub.commit("feature", "a faster learning rate", faster)
    pr = hub.run("train.yml", pull_request(), "feature", secrets=SECRETS)
    assert pr.jobs == dict.fromkeys(["changes", "train", "comment", "required"], "success"), (
        pr.output[-8000:]
    )
    assert pr.make("required", "required-check")["rc"] == 0
    assert not pr.makes("train", "push") and not pr.makes("train", "release-record")

    # 2. Merged: train.yml on the merged commit leaves its release; deploy.yml ships it.
    before, merged = hub.merge("feature")
    trained = hub.run("train.yml", push(before=before, after=merged), "main", secrets=SECRETS)
    assert trained.jobs["required"] == "success", trained.output[-8000:]
    assert trained.make("train", "release-record")["rc"] == 0
    hub.conclude(merged, "ci.yml", "success")
    release = record_of(hub, merged)
    assert release["commit"] == merged
    first = deploy(hub, target, before)
    check_deployed(first, hub, target, merged)
    [tag] = champion_tags(hub)
    message = json.loads(git_log(hub.origin, "tag", "-l", "--format=%(contents)", tag))
    assert (message["version"], message["approved_by"]) == (release["version"], "canary")
    # The tag is on the release commit: the merged one plus what its pipeline recorded.
    assert git_log(hub.origin, "rev-parse", f"{tag}^{{commit}}^") == merged
    assert "dvc.lock" in git_log(hub.origin, "show", "--stat", "--format=", tag)
    if target == "local":
        assert served_version(hub) == release["version"]
    else:
        check_on_the_cluster(first, hub)

    # 3. New data: the retrained challenger wins and opens its pull request branch in origin.
    (sources / "current.csv").write_bytes((sources / "strong.csv").read_bytes())
    retrain = hub.run("retrain.yml", schedule(), "main", secrets=SECRETS)
    assert retrain.jobs == {"retrain": "success", "pull-request": "success"}, retrain.output
    assert retrain.make("pull-request", "retrain-pr")["env"]["GH_TOKEN"] == "***"
    calls = [r["argv"] for r in retrain.commands("gh")]
    assert calls[0] == ["auth", "setup-git"] and calls[1][:3] == ["pr", "view", "retrain/auto"]
    create = calls[2]
    assert create[:2] == ["pr", "create"] and len(calls) == 3, calls
    assert create[create.index("--head") + 1] == "retrain/auto"
    assert create[create.index("--base") + 1] == "main"
    assert git_log(hub.origin, "log", "-1", "--format=%s", "retrain/auto").startswith(
        "Retrain retrain/auto: challenger wins"
    )
    before, merged = hub.merge("retrain/auto")
    trained = hub.run("train.yml", push(before=before, after=merged), "main", secrets=SECRETS)
    assert trained.jobs["required"] == "success", trained.output[-8000:]
    # retrain.yml's outputs, from the cache: nothing is trained again.
    assert (
        trained.make("train", "repro")["rc"] == 0 and "Running stage 'train'" not in trained.output
    )
    hub.conclude(merged, "ci.yml", "success")
    retrained = record_of(hub, merged)
    assert retrained["version"] != release["version"]

    # 4. Its first deploy meets an erroring canary: rolled back, nothing else moves.
    if target == "local":
        threading.Thread(target=kill_canary, args=(hub,), daemon=True).start()
    else:
        (hub.answers / "verdict").write_text("Degraded")
    failed = deploy(hub, target, before)
    rolled_back = {
        "gate": "success",
        "image": "success",
        "canary": "failure",
        "champion": "skipped",
    }
    assert failed.jobs == rolled_back, failed.output[-8000:]
    assert champion_tags(hub) == [tag]
    if target == "local":
        assert failed.make("canary", "release-rollback")["rc"] == 0
        assert served_version(hub) == release["version"]
    else:
        assert failed.make("canary", "rollback")["rc"] == 0
        kubectl = [r["argv"] for r in failed.commands("kubectl")]
        assert ["argo", "rollouts", "abort", "churn-model"] in kubectl
        assert stable_image(hub) == first.make("canary", "rollout")["env"]["IMAGE"].split("@")[1]
        (hub.answers / "verdict").unlink()

    # 3 (continued). Re-run: the retrained model is promoted, and served.
    again = deploy(hub, target, before, attempt="2")
    check_deployed(again, hub, target, merged)
    assert len(champion_tags(hub)) == 2
    if target == "local":
        assert served_version(hub) == retrained["version"]
    else:
        check_on_the_cluster(again, hub)

    # 4. A worse retraining opens no pull request (the deploy target plays no part in it).
    if target == "local":
        (sources / "current.csv").write_bytes((sources / "fewer.csv").read_bytes())
        branch = hub.sha("retrain/auto")
        worse = hub.run("retrain.yml", schedule(), "main", secrets=SECRETS)
        assert worse.jobs == {"retrain": "success", "pull-request": "skipped"}, worse.output
        assert hub.sha("retrain/auto") == branch

    # 4. A pull request that changes only README.md: `required` green without training.
    hub.commit("docs", "say more", lambda work: (work / "README.md").write_text("# more\n"))
    docs = hub.run("train.yml", pull_request(), "docs", secrets=SECRETS)
    untrained = {"changes": "success", "train": "skipped", "comment": "skipped"}
    assert docs.jobs == {**untrained, "required": "success"}, docs.output
    assert "no model inputs changed: nothing to train" in docs.output

    # 4. A commit whose CI failed deploys nothing.
    before, merged = hub.merge("docs")
    hub.conclude(merged, "ci.yml", "failure")
    hub.conclude(merged, "train.yml", "success")
    broken = deploy(hub, target, before)
    assert broken.jobs == {"gate": "failure", **dict.fromkeys(DEPLOY_JOBS[1:], "skipped")}
    assert f"ERROR: ci.yml ended failure on {merged}: nothing is deployed" in broken.output
    assert len(champion_tags(hub)) == 2


def check_on_the_cluster(result: ActRun, hub: Hub) -> None:
    """The image pushed by digest is what was attested, what the rollout applied, and what the
    (recorded) cluster's stable side runs; kubectl signed in to GKE with its auth plugin."""
    [pushed] = [r["argv"] for r in result.commands("docker") if r["argv"][0] == "push"]
    image = result.make("canary", "rollout")["env"]["IMAGE"]
    name, digest = image.split("@")
    assert pushed == ["push", f"{name}:{hub.sha('main')}"]
    attested = attestations(result)
    assert {"subject-name": name, "subject-digest": digest, "push-to-registry": "true"} in attested
    assert stable_image(hub) == digest
    [plugin] = result.actions("google-github-actions/setup-gcloud")
    assert plugin["with"] == {"install_components": "gke-gcloud-auth-plugin"}
    assert ["container", "clusters", "get-credentials", "prod", "--location", "europe-west1"] in [
        r["argv"] for r in result.commands("gcloud")
    ]


def kill_canary(hub: Hub, timeout: float = 300) -> None:
    """Crash the next release's canary server as soon as it answers (an erroring canary)."""
    stable = json.loads((hub.serving / "serving.json").read_text())["stable"]["port"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pidfile in (hub.serving / "pids").glob("bento-*.pid"):
            port = int(pidfile.stem.split("-")[1])
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).is_success
            except httpx.HTTPError:
                ready = False
            if port != stable and ready:
                kill_family(int(pidfile.read_text()))
                return
        time.sleep(0.2)
