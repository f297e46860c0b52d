"""The release cycle, executed: pull request, merge, deploy, champion, retraining, and back.

For a default bake (deploy=local) and a deploy=kubernetes bake, every workflow of the cycle runs
under act (tests/act_runner.py) as GitHub would run it: each run from a fresh clone of a local
bare repository, `origin`, that receives the pushed branches and tags; each job from a copy of
that clone without its ignored files; between runs only what GitHub keeps (origin, the actions
cache, the runs' conclusions: tests/github_hub.py). Only docker, attestation, the cloud CLIs,
kubectl and GitHub's API are recorded at the boundary (and answered as GitHub, a registry or a
cluster would). ci.yml's own run is not repeated here (tests/test_workflows.py executes it):
GitHub's API reports its conclusion for each commit.

1. a pull request changes a parameter: train.yml trains, reports, gates, `required` is green;
2. it is merged (main fast-forwards in origin): train.yml trains the merged commit and leaves
   its release; deploy.yml waits for CI, decides, builds, rolls out (local: real bento servers
   behind Caddy; kubernetes: kubectl recorded), promotes; the champion tag arrives in origin and
   the stable side serves the merged model;
3. new data: retrain.yml's winning challenger opens a pull request branch in origin; merged, its
   deploy first meets an erroring canary (rolled back: the champion tag and the stable side
   stay), then, re-run, promotes it, and the stable side serves it;
4. negative paths: a worse retraining opens no pull request; a pull request changing only
   README.md gets `required` green without training; a deploy of a commit whose CI failed
   deploys nothing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from act_runner import ActRun, Event, pull_request, push, schedule
from bakery import bake, run, tool_env
from github_hub import VENV, Hub, git_log, kill_family, overlay_venv, record_of, stop_serving_host

SECRETS = {"RETRAIN_PR_TOKEN": "sentinel-retrain-token", "GITHUB_TOKEN": "sentinel-token"}
# Columns the weak data set scrambles between rows: a model of it ranks churn visibly worse.
SCRAMBLED = ["contract", "tenure", "total_charges", "internet_service"]
# A registry digest for an image tag, as `docker push` prints it.
DOCKER_ANSWER = """#!/usr/bin/env bash
case "$1" in
  version) echo '"27.3.1"' ;;
  push) echo "latest: digest: sha256:$(printf %s "$2" | sha256sum | cut -c1-64) size: 1234" ;;
esac
"""
# A cluster as far as the rollout asks. The analysis of an applied release fails when the test
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
    """The raw data the pipeline ingests (params.yaml data.source), outside the tree: the full
    data set, and a weak one with the most telling columns scrambled between rows."""
    env = tool_env(VENV, {"PYTHONPATH": "src"})
    run(
        [str(VENV / "bin" / "python"), "-m", project.name.replace("-", "_"), "ingest"], project, env
    )
    raw = project / "data" / "raw" / "churn.csv"
    frame = pd.read_csv(raw)
    raw.unlink()
    sources.mkdir(parents=True, exist_ok=True)
    frame.to_csv(sources / "strong.csv", index=False)
    weak = frame.copy()
    for number, column in enumerate(SCRAMBLED):
        weak[column] = weak[column].sample(frac=1, random_state=number).to_numpy()
    weak.to_csv(sources / "weak.csv", index=False)
    # Fewer rows of the same data: a model of them is worse on any holdout drawn from it than
    # one of all the rows.
    frame.sample(n=2000, random_state=0).to_csv(sources / "fewer.csv", index=False)
    (sources / "current.csv").write_bytes((sources / "weak.csv").read_bytes())


def short_cycle(project: Path, source: Path, target: str) -> None:
    """params.yaml for a cycle in minutes: short canary steps on free ports, one importance
    repeat, the test's data source, a floor the weak data set passes."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"]["source"] = str(source)
    params["explain"]["repeats"] = 1
    params["evaluate"]["at_least"]["roc_auc"] = 0.6
    if target == "local":
        # The retrained model ranks far better than the weak one: its scores shift by design.
        params["canary"].update(steps=[50, 100], interval_seconds=2, min_requests=10)
        params["canary"]["max_score_psi"] = 5.0
        local = params["canary"]["local"]
        local.update(poll_seconds=0.5, max_wait_seconds=20.0, significance=0.001)
        for key in ("front_port", "admin_port", "stable_port", "canary_port"):
            local[key] = free_port()
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def cycle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    target = request.param
    root = tmp_path_factory.mktemp(f"release-{target}")
    project = bake(root / "bake", deploy=target)
    write_sources(project, root / "sources")
    short_cycle(project, root / "sources" / "current.csv", target)
    hub = Hub(root, project, overlay_venv(root / "venv"))
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


def jobs_of(result: ActRun) -> dict[str, str]:
    return result.jobs


def explain(result: ActRun) -> str:
    return result.output[-8000:]


# The cluster of the kubernetes bake: GKE, so that the job installs the auth plugin kubectl
# needs there and signs in through workload identity (all recorded).
CLUSTER = {
    "K8S_CLOUD": "gcp",
    "CLUSTER_NAME": "prod",
    "CLUSTER_LOCATION": "europe-west1",
    "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/1/locations/global/workloadIdentityPools/gh/providers/gh",
    "GCP_SERVICE_ACCOUNT": "deploy@acme.iam.gserviceaccount.com",
}


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
    """The model version the serving host's front answers with (local target)."""
    state = json.loads((hub.serving / "serving.json").read_text())
    params = yaml.safe_load(
        run(["git", "--git-dir", str(hub.origin), "show", "main:params.yaml"], hub.root).stdout
    )
    local = params["canary"]["local"]
    stable = f"http://127.0.0.1:{state['stable']['port']}"
    assert httpx.get(f"{stable}/readyz", timeout=5).status_code == 200
    record = pd.read_csv(hub.root / "sources" / "strong.csv").drop(columns=["churn", "customer_id"])
    answer = httpx.post(
        f"http://127.0.0.1:{local['front_port']}/predict",
        json=json.loads(record.iloc[[0]].to_json(orient="records"))[0],
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["model_version"]


def stable_image(hub: Hub) -> str:
    return (hub.answers / "stable").read_text().strip()


def test_release_cycle(cycle) -> None:
    target, hub, sources = cycle
    if target == "kubernetes":
        for name, text in (("docker", DOCKER_ANSWER), ("kubectl", KUBECTL_ANSWER)):
            (hub.answers / name).write_text(text)
            (hub.answers / name).chmod(0o755)

    # 1. A pull request that changes a parameter: trained, reported, gated, `required` green.
    def faster(work: Path) -> None:
        params = work / "params.yaml"
        params.write_text(params.read_text().replace("learning_rate: 0.05", "learning_rate: 0.08"))

    hub.commit("feature", "a faster learning rate", faster)
    pr = hub.run("train.yml", pull_request(), "feature", secrets=SECRETS)
    assert pr.jobs == dict.fromkeys(["changes", "train", "comment", "required"], "success"), (
        explain(pr)
    )
    assert pr.make("required", "required-check")["rc"] == 0
    assert not pr.makes("train", "release-record"), "a pull request's training is a preview"

    # 2. Merged: train.yml on the merged commit leaves its release; deploy.yml ships it.
    before, merged = hub.merge("feature")
    trained = hub.run("train.yml", push(before=before, after=merged), "main", secrets=SECRETS)
    assert trained.jobs["required"] == "success", explain(trained)
    hub.conclude(merged, "ci.yml", "success")
    release = record_of(hub, merged)
    first = deploy(hub, target, before)
    assert first.jobs == dict.fromkeys(["gate", "image", "canary", "champion"], "success"), explain(
        first
    )
    assert "nothing is retrained" not in first.output
    [tag] = champion_tags(hub)
    message = json.loads(git_log(hub.origin, "tag", "-l", "--format=%(contents)", tag))
    assert message["version"] == release["version"] and message["approved_by"] == "canary"
    if target == "local":
        assert served_version(hub) == release["version"]
    else:
        image = first.make("canary", "rollout")["env"]["IMAGE"]
        assert stable_image(hub) == image.split("@")[1]
    # TODO assertions on records (attestation verify, ci-wait)

    # 3. New data: the retrained challenger wins and opens its pull request branch in origin.
    (sources / "current.csv").write_bytes((sources / "strong.csv").read_bytes())
    retrain = hub.run("retrain.yml", schedule(), "main", secrets=SECRETS)
    assert retrain.jobs == {"retrain": "success", "pull-request": "success"}, explain(retrain)
    assert git_log(hub.origin, "log", "-1", "--format=%s", "retrain/auto").startswith("Retrain")
    before, merged = hub.merge("retrain/auto")
    trained = hub.run("train.yml", push(before=before, after=merged), "main", secrets=SECRETS)
    assert trained.jobs["required"] == "success", explain(trained)
    hub.conclude(merged, "ci.yml", "success")
    retrained = record_of(hub, merged)
    assert retrained["version"] != release["version"]

    # 4a. Its first deploy meets an erroring canary: rolled back, nothing else moves.
    if target == "local":
        killer = threading.Thread(target=kill_canary, args=(hub,), daemon=True)
        killer.start()
    else:
        (hub.answers / "verdict").write_text("Degraded")
    failed = deploy(hub, target, before)
    assert failed.jobs["canary"] == "failure" and failed.jobs["champion"] == "skipped", explain(
        failed
    )
    assert champion_tags(hub) == [tag]
    if target == "local":
        assert failed.make("canary", "release-rollback")["rc"] == 0
        assert served_version(hub) == release["version"]
    else:
        assert failed.make("canary", "rollback")["rc"] == 0
        assert stable_image(hub) == image.split("@")[1]
        (hub.answers / "verdict").unlink()

    # 3 (continued). Re-run: the retrained model is promoted and served.
    again = deploy(hub, target, before, attempt="2")
    assert again.jobs == dict.fromkeys(["gate", "image", "canary", "champion"], "success"), explain(
        again
    )
    assert len(champion_tags(hub)) == 2
    if target == "local":
        assert served_version(hub) == retrained["version"]

    # 4b. A worse retraining opens no pull request.
    if target == "local":
        (sources / "current.csv").write_bytes((sources / "fewer.csv").read_bytes())
        branch = hub.sha("retrain/auto")
        worse = hub.run("retrain.yml", schedule(), "main", secrets=SECRETS)
        assert worse.jobs == {"retrain": "success", "pull-request": "skipped"}, explain(worse)
        assert hub.sha("retrain/auto") == branch

    # 4c. A pull request that changes only README.md: `required` green without training.
    hub.commit("docs", "say more", lambda work: (work / "README.md").write_text("# more\n"))
    docs = hub.run("train.yml", pull_request(), "docs", secrets=SECRETS)
    assert docs.jobs["train"] == "skipped" and docs.jobs["required"] == "success", explain(docs)
    assert "no model inputs changed" in docs.output

    # 4d. A commit whose CI failed deploys nothing.
    before, merged = hub.merge("docs")
    hub.conclude(merged, "ci.yml", "failure")
    hub.conclude(merged, "train.yml", "success")
    broken = deploy(hub, target, before)
    assert broken.jobs["gate"] == "failure" and broken.jobs["image"] == "skipped", explain(broken)
    assert len(champion_tags(hub)) == 2


def kill_canary(hub: Hub, timeout: float = 300) -> None:
    """Crash the canary server of the next release as soon as it serves (an erroring canary)."""
    state = json.loads((hub.serving / "serving.json").read_text())
    stable = state["stable"]["port"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pidfile in (hub.serving / "pids").glob("bento-*.pid"):
            port = int(pidfile.stem.split("-")[1])
            if port == stable:
                continue
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                kill_family(int(pidfile.read_text()))
                return
        time.sleep(0.2)
