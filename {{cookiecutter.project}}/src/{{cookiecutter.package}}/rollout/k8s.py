"""Kubernetes canary manifests rendered from params.yaml, and the release overlay of one image.

`make k8s-manifests` writes deploy/k8s/rollout.yaml (the traffic steps) and
deploy/k8s/analysis-template.yaml (the Prometheus checks) from params.yaml `canary:` and `k8s:`,
so the thresholds a cluster applies are the ones the local canary applies. The other files of
deploy/k8s are yours to edit. `make rollout` writes build/k8s-release/kustomization.yaml: the
manifests with the image just pushed, applied in one `kubectl apply -k`.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from {{ cookiecutter.package }}.config import (
    K8S_DIR,
    K8S_RELEASE_DIR,
    CanarySettings,
    KubernetesSettings,
    ParamsError,
    Settings,
    stale_files,
    sync_rendered,
)
from {{ cookiecutter.package }}.monitoring.stats import SMOOTHING
from {{ cookiecutter.package }}.serving import SCORE_BUCKETS

APP = "{{ cookiecutter.project }}"
ROLLOUT_FILE = "rollout.yaml"
ANALYSIS_FILE = "analysis-template.yaml"
# Prometheus copies the pod label rollouts-pod-template-hash (set by Argo Rollouts on every pod
# it runs) to this label; it tells canary pods from stable pods.
HASH_LABEL = "rollouts_pod_template_hash"
HEADER = (
    "# Rendered from params.yaml (canary:, k8s:) by `make k8s-manifests`: edit params.yaml,\n"
    "# then rerun it. tests/test_k8s_manifests.py fails when this file is out of date.\n"
)


def check(settings: Settings) -> Settings:
    """The settings, once the rollout's timeout leaves room for every step."""
    canary, k8s = settings.canary, settings.k8s
    least = len(canary.steps) * canary.interval_seconds
    if k8s.rollout_timeout_seconds < least:
        raise ParamsError(
            f"params.yaml: k8s.rollout_timeout_seconds is {k8s.rollout_timeout_seconds}: shorter "
            f"than the rollout itself ({len(canary.steps)} steps x canary.interval_seconds = "
            f"{least}); raise it to at least {least} plus the time pods take to start"
        )
    return settings


# --- the Rollout ------------------------------------------------------------------------------


def rollout(canary: CanarySettings) -> dict[str, Any]:
    """Argo Rollouts canary over the Deployment's pod template (workloadRef)."""
    steps: list[dict[str, Any]] = []
    for weight in canary.steps:
        # At 100 % a basic canary has scaled the stable pods away: the stable side's window
        # reaches back over the previous interval too, when they still served.
        stable_window = canary.interval_seconds * (2 if weight == 100 else 1)
        analysis = {
            "templates": [{"templateName": APP}],
            "args": [
                {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
                {"name": "stable-window", "value": f"{stable_window}s"},
            ],
        }
        steps += [
            {"setWeight": weight},
            {"pause": {"duration": f"{canary.interval_seconds}s"}},
            {"analysis": analysis},
        ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": APP, "labels": {"app.kubernetes.io/name": APP}},
        "spec": {
            # No replicas: the HorizontalPodAutoscaler (hpa.yaml) owns the count.
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": APP}},
            "workloadRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": APP,
                # Pods of an existing Deployment go away only as the Rollout's become ready.
                "scaleDown": "progressively",
            },
            "strategy": {"canary": {"steps": steps}},
        },
    }


# --- the AnalysisTemplate ---------------------------------------------------------------------


def argument(name: str) -> str:
    """Argo's placeholder for an analysis argument, filled in when an analysis run starts."""
    return "{" * 2 + f"args.{name}" + "}" * 2


def _selector(side: str, *matchers: str) -> str:
    hash_matcher = f'{HASH_LABEL}="{argument(side + "-hash")}"'
    return "{" + ", ".join([hash_matcher, *matchers]) + "}"


def _range(side: str, window: str) -> str:
    return f"[{argument('stable-window')}]" if side == "stable" else f"[{window}]"


def _increase(metric: str, side: str, window: str, *matchers: str) -> str:
    return f"increase({metric}{_selector(side, *matchers)}{_range(side, window)})"


def request_count_query(window: str) -> str:
    return f"sum({_increase('bentoml_service_request_total', 'canary', window)})"


def error_rate_query(window: str) -> str:
    """Share of the canary's requests answered with a 5xx (a 4xx is the client's fault)."""
    total = "bentoml_service_request_total"
    errors = _increase(total, "canary", window, 'http_response_code=~"5.."')
    return f"sum({errors}) / {request_count_query(window)}"


def p95_ratio_query(window: str) -> str:
    """Canary p95 latency over stable p95 latency in the same window."""
    buckets = "bentoml_service_request_duration_seconds_bucket"

    def p95(side: str) -> str:
        rate = f"rate({buckets}{_selector(side)}{_range(side, window)})"
        return f"histogram_quantile(0.95, sum by (le) ({rate}))"

    return f"{p95('canary')}\n/\n{p95('stable')}"


def _bin_share(side: str, window: str) -> str:
    """Each score bin's share of one side's predictions, smoothed by SMOOTHING counts per bin
    as ``stats.psi`` smooths them, so an empty bin cannot make the log ratio infinite.

    The histogram's buckets are cumulative; a bin is its bucket minus the one below. PromQL
    cannot subtract across `le` values, so the buckets below +Inf are relabelled one step up
    (0.95 -> +Inf first, so no two series ever share a label set) and subtracted on `le`.
    """
    bucket = "model_prediction_score_bucket"
    cumulative = f"sum by (le) ({_increase(bucket, side, window)})"
    below_inf = 'le!="+Inf"'
    shifted = f"sum by (le) ({_increase(bucket, side, window, below_inf)})"
    uppers = [str(bound) for bound in SCORE_BUCKETS] + ["+Inf"]
    # The regex is anchored and the le values are a closed set, so "0.1" matches only "0.1".
    for lower, upper in reversed(list(itertools.pairwise(uppers))):
        shifted = f'label_replace({shifted}\n    , "le", "{upper}", "le", "{lower}")'
    # The first bin has no bucket below it: subtract zero there.
    below = f"({shifted}\n    or {cumulative} * 0)"
    total = f"({_score_count(side, window)} + {SMOOTHING * len(uppers)})"
    return f"(({cumulative} - on (le) {below}) + {SMOOTHING}) / {total}"


def _score_count(side: str, window: str) -> str:
    return f"scalar(sum({_increase('model_prediction_score_count', side, window)}))"


def score_psi_query(window: str) -> str:
    """``monitoring.stats.psi`` of the canary's scores against the stable's over the service's
    score bins, written in PromQL: smoothed shares, their PSI, less the PSI that sampling noise
    alone gives samples of these sizes, at least 0. Without the noise term a 5 % step that sees
    60 scores would read about 0.3 for a canary exactly as good as the stable, and be rolled
    back. Unlike the local canary it cannot pool sparse bins (PromQL has no running sum over
    `le`)."""
    canary, stable = _bin_share("canary", window), _bin_share("stable", window)
    difference = f"({canary}\n  - on (le)\n  {stable})"
    log_ratio = f"ln({canary}\n  / on (le)\n  {stable})"
    canary_n, stable_n = _score_count("canary", window), _score_count("stable", window)
    # stats.noise_psi, (bins - 1) * (1/n + 1/m): the bins are the finite bounds and +Inf.
    noise = f"{len(SCORE_BUCKETS)} * (1 / {canary_n} + 1 / {stable_n})"
    return f"clamp_min(\nsum(\n  {difference}\n  * {log_ratio}\n)\n- {noise},\n0\n)"


def analysis_template(canary: CanarySettings, k8s: KubernetesSettings) -> dict[str, Any]:
    """One measurement per step over the step's interval; any failed metric aborts."""
    window = f"{canary.interval_seconds}s"

    def metric(name: str, query: str, condition: str) -> dict[str, Any]:
        return {
            "name": name,
            "count": 1,
            "failureLimit": 0,
            # A query that returns nothing (no traffic, no scrape) fails instead of passing.
            "successCondition": f"len(result) > 0 && !isNaN(result[0]) && {condition}",
            "provider": {"prometheus": {"address": k8s.prometheus_address, "query": query}},
        }

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": APP, "labels": {"app.kubernetes.io/name": APP}},
        "spec": {
            "args": [{"name": "canary-hash"}, {"name": "stable-hash"}, {"name": "stable-window"}],
            "metrics": [
                metric(
                    "canary-requests",
                    request_count_query(window),
                    f"result[0] >= {canary.min_requests}",
                ),
                metric(
                    "error-rate",
                    error_rate_query(window),
                    f"result[0] <= {canary.max_error_rate}",
                ),
                metric(
                    "p95-latency-ratio",
                    p95_ratio_query(window),
                    f"result[0] <= {canary.max_p95_ratio}",
                ),
                metric(
                    "score-psi",
                    score_psi_query(window),
                    f"result[0] <= {canary.max_score_psi}",
                ),
            ],
        },
    }


# --- files ------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Multi-line queries as `|` blocks, and no anchors: each step is written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _dump(manifest: dict[str, Any]) -> str:
    return HEADER + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=100)


def render(settings: Settings) -> dict[str, str]:
    """File name -> text of every manifest derived from params.yaml."""
    check(settings)
    return {
        ROLLOUT_FILE: _dump(rollout(settings.canary)),
        ANALYSIS_FILE: _dump(analysis_template(settings.canary, settings.k8s)),
    }


def write(settings: Settings, check: bool = False, directory: Path = K8S_DIR) -> list[Path]:
    """Render into ``directory`` (all checks pass before any file is written); ``check``: write
    nothing, fail naming the files that differ from params.yaml."""
    rendered = {directory / name: text for name, text in render(settings).items()}
    return sync_rendered(rendered, check, "make k8s-manifests")


def stale(settings: Settings, directory: Path = K8S_DIR) -> list[str]:
    """Names of rendered files whose committed text differs from a fresh render."""
    rendered = {directory / name: text for name, text in render(settings).items()}
    return [path.name for path in stale_files(rendered)]


# --- one release ------------------------------------------------------------------------------

IMAGE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64})|:(?P<tag>[\w][\w.-]{0,127}))$"
)


def release_overlay(image: str, base: Path = K8S_DIR) -> dict[str, Any]:
    """A kustomization that applies `base` with `image` (name@sha256:... or name:tag)."""
    match = IMAGE.match(image)
    if not match:
        raise ValueError(
            f"IMAGE {image!r} is not an image reference: use lowercase "
            "registry/name@sha256:<64 hex> (or registry/name:tag), e.g. "
            f"ghcr.io/acme/{APP}@sha256:{'0' * 64}"
        )
    kustomization = base / "kustomization.yaml"
    if not kustomization.exists():
        raise FileNotFoundError(f"{kustomization} not found: run from the project root")
    # The base already rewrote the placeholder to its own newName; match that name.
    placeholder = yaml.safe_load(kustomization.read_text())["images"][0]
    current = placeholder.get("newName", placeholder["name"])
    pinned = {"name": current, "newName": match["name"]}
    pinned.update({"digest": match["digest"]} if match["digest"] else {"newTag": match["tag"]})
    relative = Path("../..") / base if not base.is_absolute() else base
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [str(relative)],
        "images": [pinned],
    }


def write_release(image: str, directory: Path = K8S_RELEASE_DIR) -> Path:
    overlay = release_overlay(image)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kustomization.yaml"
    path.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return path
