"""deploy=kubernetes manifests: valid offline, equal to their render, thresholds from params.yaml.

Core kinds are validated by kubernetes-validate against a pinned Kubernetes version; the
Rollout and AnalysisTemplate against the openAPIV3Schema of Argo Rollouts' published CRDs
(tests/data/argo-crds, copied from the tag named in SOURCE.md). No cluster runs here: the
boundary is `kubectl apply -k`, whose input is checked file by file.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import numpy as np
import promql_parser
import pytest
import yaml
from bakery import bake, run, tool_env

KUBERNETES_VERSION = "1.33.0"
CRDS = Path(__file__).parent / "data" / "argo-crds"
CORE_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler"}
# The monitor's CronJob, the settings it shares with the Deployment, and (DVC remote on a local
# disk) the volume both keep monitoring data on.
MONITOR_KINDS = {"CronJob", "ConfigMap", "PersistentVolumeClaim"}
ARGO_CRD = {"Rollout": "rollout-crd.yaml", "AnalysisTemplate": "analysis-template-crd.yaml"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("k8s"), project="fraud-scorer", deploy="kubernetes")


def baked(project: Path, relative: str):
    """A module of the baked package, loaded from its file on its own (it imports nothing of the
    package): the tests compare the query with the project's own definitions, not a copy."""
    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    path = project / "src" / package / relative
    spec = importlib.util.spec_from_file_location(f"baked_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bounds(project: Path) -> tuple[float, ...]:
    """The service's score buckets (serving/__init__.py SCORE_BUCKETS)."""
    return baked(project, "serving/__init__.py").SCORE_BUCKETS


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
    assert set(manifests(project)) == CORE_KINDS | MONITOR_KINDS | set(ARGO_CRD)


@pytest.mark.parametrize("kind", sorted(CORE_KINDS | MONITOR_KINDS))
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


def test_score_shift_query_pairs_every_bucket_with_the_one_below(
    project: Path, bounds: tuple[float, ...]
) -> None:
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
    assert bounds == tuple(round(0.05 * step, 2) for step in range(1, 20))
    labels = [str(bound) for bound in bounds] + ["+Inf"]
    # Read from the outside in, the last relabel applied comes first: 0.05 -> 0.1, ..., and the
    # innermost, applied first, is 0.95 -> +Inf. Four bin vectors: canary and stable, in the
    # difference and in the log ratio.
    assert relabels == list(itertools.pairwise(labels)) * 4


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
    assert (project / "deploy" / "local" / "serving.service").exists()
    assert "k8s" not in yaml.safe_load((project / "params.yaml").read_text())
    assert "rollout:" not in (project / "Makefile").read_text()
    assert "render-k8s" not in (project / "src" / "churn_model" / "cli" / "deploys.py").read_text()


def test_the_generated_manifest_tests_pass(project: Path) -> None:
    # The baked project's own check (committed manifests == render, bad settings named), run
    # as its `make test` runs it; the lifecycle bakes use deploy=local and would not reach it.
    env = tool_env(extra={"PYTHONPATH": str(project / "src")})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = run([*command, "tests/test_k8s_manifests.py"], cwd=project, env=env)
    assert " passed" in result.stdout and "failed" not in result.stdout


# --- what the score-shift query computes: evaluated on known histograms ----------------------
# A small evaluator for the PromQL the AnalysisTemplate uses, following Prometheus' semantics
# for instant vectors whose labels are `le` (and the pod hash before aggregation): enough to
# show that the query's number is the PSI of the two score histograms. `increase(...[w])` reads
# the per-series increase from `series`, as Prometheus would compute it over the window.


def evaluate(node, series: list[tuple[dict[str, str], float]]):
    kind = type(node).__name__
    if kind == "ParenExpr":
        return evaluate(node.expr, series)
    if kind in {"NumberLiteral", "StringLiteral"}:
        return node.val
    if kind == "AggregateExpr":
        assert str(node.op) == "sum", node.op
        by = list(node.modifier.labels) if node.modifier else []
        totals: dict = {}
        for labels, value in evaluate(node.expr, series).items():
            key = frozenset((k, v) for k, v in labels if k in by)
            totals[key] = totals.get(key, 0.0) + value
        return totals
    if kind == "Call":
        name, args = node.func.name, node.args
        if name == "increase":
            return select(args[0].vector_selector, series)
        if name == "label_replace":
            vector = evaluate(args[0], series)
            dst, replacement, src, regex = (evaluate(a, series) for a in args[1:])
            out = {}
            for labels, value in vector.items():
                found = dict(labels)
                if re.fullmatch(regex, found.get(src, "")):
                    found[dst] = replacement
                key = frozenset(found.items())
                assert key not in out, "vector cannot contain metrics with the same labelset"
                out[key] = value
            return out
        if name == "scalar":
            vector = evaluate(args[0], series)
            return next(iter(vector.values())) if len(vector) == 1 else math.nan
        if name == "ln":
            return {k: math.log(v) for k, v in evaluate(args[0], series).items()}
        if name == "clamp_min":
            low = evaluate(args[1], series)
            return {k: max(v, low) for k, v in evaluate(args[0], series).items()}
        raise AssertionError(f"no evaluator for {name}")
    if kind == "BinaryExpr":
        return binary(node, evaluate(node.lhs, series), evaluate(node.rhs, series))
    raise AssertionError(f"no evaluator for {kind}")


def select(selector, series: list[tuple[dict[str, str], float]]) -> dict:
    def matches(labels: dict[str, str]) -> bool:
        for matcher in selector.matchers.matchers:
            value, op = labels.get(matcher.name, ""), matcher.op
            if op == promql_parser.MatchOp.Equal:
                ok = value == matcher.value
            elif op == promql_parser.MatchOp.NotEqual:
                ok = value != matcher.value
            elif op == promql_parser.MatchOp.Re:
                ok = re.fullmatch(matcher.value, value) is not None
            else:
                raise AssertionError(f"no evaluator for the matcher {op}")
            if not ok:
                return False
        return True

    return {
        frozenset(labels.items()): value
        for labels, value in series
        if labels["__name__"] == selector.name and matches(labels)
    }


def binary(node, lhs, rhs):
    op = str(node.op)
    apply = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: a / b if b else math.nan,
    }
    if not isinstance(lhs, dict) and not isinstance(rhs, dict):
        return apply[op](lhs, rhs)
    if not isinstance(rhs, dict):
        return {k: apply[op](v, rhs) for k, v in lhs.items()}
    if not isinstance(lhs, dict):
        return {k: apply[op](lhs, v) for k, v in rhs.items()}
    on = list(node.modifier.matching.labels) if node.modifier and node.modifier.matching else None

    def signature(labels) -> frozenset:
        return frozenset((k, v) for k, v in labels if on is None or k in on)

    if op == "or":
        taken = {signature(k) for k in lhs}
        return {**lhs, **{k: v for k, v in rhs.items() if signature(k) not in taken}}
    right = {signature(k): v for k, v in rhs.items()}
    return {
        signature(k): apply[op](v, right[signature(k)])
        for k, v in lhs.items()
        if signature(k) in right
    }


def histogram(
    scores: np.ndarray, pod_hash: str, bounds: tuple[float, ...]
) -> list[tuple[dict[str, str], float]]:
    """Cumulative bucket increases of model_prediction_score, split over two pods."""
    found = []
    for pod, half in enumerate(np.array_split(scores, 2)):
        labels = {"rollouts_pod_template_hash": pod_hash, "pod": f"{pod_hash}-{pod}"}
        for le in [*bounds, math.inf]:
            value = float((half <= le).sum())
            name = "+Inf" if le == math.inf else str(le)
            found.append(
                ({"__name__": "model_prediction_score_bucket", "le": name, **labels}, value)
            )
        found.append(({"__name__": "model_prediction_score_count", **labels}, float(len(half))))
    return found


def bin_counts(scores: np.ndarray, bounds: tuple[float, ...]) -> np.ndarray:
    """Scores per bin of the service's histogram (right-closed, as Prometheus' `le`)."""
    cumulative = [float((scores <= le).sum()) for le in bounds]
    return np.diff([0.0, *cumulative, float(len(scores))])


@pytest.mark.parametrize(
    ("canary_beta", "stable_beta", "sizes", "passes"),
    [
        ((2, 5), (2, 5), (4000, 6000), True),  # the same model: sampling noise only
        ((2, 5), (2.4, 5), (4000, 6000), True),  # a slightly different model (PSI about 0.08)
        ((5, 2), (2, 5), (4000, 6000), False),  # scores flipped: answers 200, predicts the opposite
        ((0.5, 0.5), (2, 2), (4000, 6000), False),  # overconfident: scores pile up at 0 and 1
        # A 5 % step of light traffic: 60 scores against 1140. Their raw PSI is about 0.3 when
        # both come from one model; less that noise the same model passes and a flipped fails.
        ((2, 5), (2, 5), (60, 1140), True),
        ((5, 2), (2, 5), (60, 1140), False),
    ],
    ids=["same-model", "slight-shift", "flipped", "overconfident", "same-light", "flipped-light"],
)
def test_score_shift_query_computes_the_psi_of_the_two_histograms(
    project: Path,
    bounds: tuple[float, ...],
    canary_beta: tuple,
    stable_beta: tuple,
    sizes: tuple,
    passes: bool,
) -> None:
    """The query's value is the project's PSI (monitoring/stats.py) of the two histograms'
    bins: the one definition, written in PromQL."""
    rng = np.random.default_rng(7)
    canary, stable = rng.beta(*canary_beta, sizes[0]), rng.beta(*stable_beta, sizes[1])
    series = histogram(canary, "6d4f8b9c7", bounds) + histogram(stable, "5c8d7e6f9", bounds)
    metric = next(
        m
        for m in manifests(project)["AnalysisTemplate"]["spec"]["metrics"]
        if m["name"] == "score-psi"
    )
    result = evaluate(
        promql_parser.parse(filled(metric["provider"]["prometheus"]["query"], "60s")), series
    )
    (value,) = result.values() if isinstance(result, dict) else (result,)
    psi = baked(project, "monitoring/stats.py").psi
    expected = psi(bin_counts(stable, bounds), bin_counts(canary, bounds))
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-12)
    threshold = yaml.safe_load((project / "params.yaml").read_text())["canary"]["max_score_psi"]
    assert metric["successCondition"].endswith(f"result[0] <= {threshold}")
    assert (value <= threshold) == passes


def test_error_rate_query_counts_5xx_of_the_canary_only(project: Path) -> None:
    metrics = manifests(project)["AnalysisTemplate"]["spec"]["metrics"]
    query = next(m for m in metrics if m["name"] == "error-rate")["provider"]["prometheus"]["query"]
    name = "bentoml_service_request_total"
    series = [
        (
            {
                "__name__": name,
                "rollouts_pod_template_hash": "6d4f8b9c7",
                "http_response_code": code,
            },
            n,
        )
        for code, n in (("200", 180.0), ("422", 15.0), ("500", 4.0), ("503", 1.0))
    ] + [
        (
            {
                "__name__": name,
                "rollouts_pod_template_hash": "5c8d7e6f9",
                "http_response_code": "500",
            },
            90.0,
        )
    ]
    result = evaluate(promql_parser.parse(filled(query, "60s")), series)
    assert list(result.values()) == [pytest.approx(5 / 200)]
