"""deploy=kubernetes manifests: valid offline, equal to their render, thresholds from params.yaml.

Core kinds are validated by kubernetes-validate against a pinned Kubernetes version; the
Rollout and AnalysisTemplate against the openAPIV3Schema of Argo Rollouts' published CRDs
(tests/data/argo-crds, copied from the tag named in SOURCE.md). No cluster runs here: the
boundary is `kubectl apply -k`, whose input is checked file by file.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml
from bakery import bake, run, tool_env

KUBERNETES_VERSION = "1.33.0"
CRDS = Path(__file__).parent / "data" / "argo-crds"
CORE_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler"}
ARGO_CRD = {"Rollout": "rollout-crd.yaml", "AnalysisTemplate": "analysis-template-crd.yaml"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("k8s"), project="fraud-scorer", deploy="kubernetes")


def manifests(project: Path) -> dict[str, dict]:
    """kind -> manifest of every resource the kustomization lists."""
    directory = project / "deploy" / "k8s"
    listed = yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
    found = {}
    for name in listed:
        for document in yaml.safe_load_all((directory / name).read_text()):
            found[document["kind"]] = document
    return found


def crd_schema(kind: str) -> dict:
    crd = yaml.safe_load((CRDS / ARGO_CRD[kind]).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_kustomization_lists_every_manifest_and_nothing_else(project: Path) -> None:
    directory = project / "deploy" / "k8s"
    listed = yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert set(manifests(project)) == CORE_KINDS | set(ARGO_CRD)


@pytest.mark.parametrize("kind", sorted(CORE_KINDS))
def test_core_kinds_validate_against_kubernetes(project: Path, kind: str) -> None:
    manifest = manifests(project)[kind]
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kind", sorted(ARGO_CRD))
def test_argo_kinds_validate_against_their_crd(project: Path, kind: str) -> None:
    jsonschema.validate(manifests(project)[kind], crd_schema(kind))


def test_the_crd_check_would_catch_a_wrong_field(project: Path) -> None:
    rollout = json.loads(json.dumps(manifests(project)["Rollout"]))
    rollout["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "five"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rollout, crd_schema("Rollout"))
    deployment = manifests(project)["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_names_and_references_agree(project: Path) -> None:
    found = manifests(project)
    rollout, deployment = found["Rollout"], found["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert (
        rollout["spec"]["workloadRef"]["name"] == deployment["metadata"]["name"] == "fraud-scorer"
    )
    assert rollout["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert found["Service"]["spec"]["selector"].items() <= labels.items()
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Rollout", "fraud-scorer")
    templates = {
        ref["templateName"]
        for step in rollout["spec"]["strategy"]["canary"]["steps"]
        if "analysis" in step
        for ref in step["analysis"]["templates"]
    }
    assert templates == {found["AnalysisTemplate"]["metadata"]["name"]}
    declared = {arg["name"] for arg in found["AnalysisTemplate"]["spec"]["args"]}
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        if "analysis" in step:
            assert {arg["name"] for arg in step["analysis"]["args"]} == declared
    image = yaml.safe_load((project / "deploy/k8s/kustomization.yaml").read_text())["images"][0]
    assert image["name"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_steps_and_thresholds_equal_params_yaml(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    canary = params["canary"]
    found = manifests(project)
    steps = found["Rollout"]["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == canary["steps"]
    assert {s["pause"]["duration"] for s in steps if "pause" in s} == {
        f"{canary['interval_seconds']}s"
    }
    conditions = {
        m["name"]: m["successCondition"] for m in found["AnalysisTemplate"]["spec"]["metrics"]
    }
    assert conditions["canary-requests"].endswith(f">= {canary['min_requests']}")
    assert conditions["error-rate"].endswith(f"<= {canary['max_error_rate']}")
    assert conditions["p95-latency-ratio"].endswith(f"<= {canary['max_p95_ratio']}")
    assert conditions["score-psi"].endswith(f"<= {canary['max_score_psi']}")
    for metric in found["AnalysisTemplate"]["spec"]["metrics"]:
        assert metric["provider"]["prometheus"]["address"] == params["k8s"]["prometheus_address"]


def filled(query: str, stable_window: str) -> str:
    """The query as Argo sends it, with the step's arguments in place of their placeholders."""
    values = {
        "canary-hash": "6d4f8b9c7",
        "stable-hash": "5c8d7e6f9",
        "stable-window": stable_window,
    }
    for name, value in values.items():
        query = query.replace("{{args." + name + "}}", value)
    assert "{{" not in query, query
    return query


def test_every_query_parses_as_promql(project: Path) -> None:
    """Each metric's query, as sent at a partial step and at the 100 % step, is PromQL that the
    Prometheus grammar accepts (promql-parser, a port of Prometheus' parser). What the queries
    compute is shown on real metrics only by a cluster; the score-shift test below checks its
    bins."""
    found = manifests(project)
    windows = {
        arg["value"]
        for step in found["Rollout"]["spec"]["strategy"]["canary"]["steps"]
        if "analysis" in step
        for arg in step["analysis"]["args"]
        if arg["name"] == "stable-window"
    }
    assert windows == {"60s", "120s"}
    for metric in found["AnalysisTemplate"]["spec"]["metrics"]:
        for window in windows:
            promql_parser.parse(filled(metric["provider"]["prometheus"]["query"], window))
    with pytest.raises(ValueError):  # the check can fail: an unbalanced query is refused
        promql_parser.parse("sum(rate(model_prediction_score_count[60s])")


def test_score_shift_query_pairs_every_bucket_with_the_one_below(project: Path) -> None:
    """The bins: each `le` below +Inf is relabelled to the next one up, highest first, so the
    cumulative buckets subtract into per-bin counts without two series sharing a label set."""
    metrics = manifests(project)["AnalysisTemplate"]["spec"]["metrics"]
    query = next(m for m in metrics if m["name"] == "score-psi")["provider"]["prometheus"]["query"]
    tree = promql_parser.parse(filled(query, "60s"))
    relabels: list[tuple[str, str]] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.Call) and node.func.name == "label_replace":
            relabels.append((node.args[4].val, node.args[2].val))  # (from le, to le)
        for child in _children(node):
            visit(child)

    visit(tree)
    bounds = [str(round(0.05 * step, 2)) for step in range(1, 20)] + ["+Inf"]
    # Read from the outside in, the last relabel applied comes first: 0.05 -> 0.1, ..., and the
    # innermost, applied first, is 0.95 -> +Inf. Four bin vectors: canary and stable, in the
    # difference and in the log ratio.
    assert relabels == list(itertools.pairwise(bounds)) * 4


def _children(node) -> list:
    names = ("expr", "lhs", "rhs", "args", "param")
    found = []
    for name in names:
        value = getattr(node, name, None)
        if isinstance(value, list):
            found += value
        elif value is not None and not isinstance(value, (str, int, float)):
            found.append(value)
    return found


def render_check(project: Path) -> None:
    code = "import sys; from {0}.cli import app; sys.argv = ['{0}', 'render-k8s', '--check']; app()"
    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    env = tool_env(extra={"PYTHONPATH": str(project / "src")})
    run([sys.executable, "-c", code.format(package)], cwd=project, env=env)


def test_committed_manifests_equal_their_render_and_follow_an_edit(project: Path) -> None:
    render_check(project)  # the baked files are exactly what `make k8s-manifests` writes
    params_file = project / "params.yaml"
    original = params_file.read_text()
    try:
        params_file.write_text(original.replace("steps: [5, 25, 50, 100]", "steps: [100]"))
        with pytest.raises(AssertionError, match=r"rollout\.yaml"):
            render_check(project)
    finally:
        params_file.write_text(original)


def test_local_deploy_bakes_no_kubernetes(tmp_path: Path) -> None:
    project = bake(tmp_path, deploy="local")
    assert not (project / "deploy" / "k8s").exists()
    assert (project / "deploy" / "local" / "bento-serve@.service").exists()
    assert "k8s" not in yaml.safe_load((project / "params.yaml").read_text())
    assert "rollout:" not in (project / "Makefile").read_text()
    assert "render-k8s" not in (project / "src" / "churn_model" / "cli.py").read_text()


def test_the_generated_manifest_tests_pass(project: Path) -> None:
    # The baked project's own check (committed manifests == render, bad settings named), run
    # as its `make test` runs it; the lifecycle bakes use deploy=local and would not reach it.
    env = tool_env(extra={"PYTHONPATH": str(project / "src")})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = run([*command, "tests/test_k8s_manifests.py"], cwd=project, env=env)
    assert " passed" in result.stdout and "failed" not in result.stdout
