"""deploy/k8s follows params.yaml: committed manifests, thresholds, bad settings, the release."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.config import K8S_DIR, K8S_RELEASE_DIR, ParamsError, parse_settings
from {{ cookiecutter.package }}.rollout import k8s
from {{ cookiecutter.package }}.serving import SCORE_BUCKETS

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture()
def params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_manifests_equal_a_fresh_render(params: dict) -> None:
    # Fails after an edit of params.yaml canary:/k8s: until `make k8s-manifests` is rerun.
    assert k8s.stale(parse_settings(params), ROOT / K8S_DIR) == []


def test_rollout_steps_and_analysis_thresholds_are_those_of_params(params: dict) -> None:
    rendered = k8s.render(parse_settings(params))
    rendered = {name: yaml.safe_load(text) for name, text in rendered.items()}
    canary = params["canary"]
    steps = rendered[k8s.ROLLOUT_FILE]["spec"]["strategy"]["canary"]["steps"]
    assert [step["setWeight"] for step in steps if "setWeight" in step] == canary["steps"]
    pauses = {step["pause"]["duration"] for step in steps if "pause" in step}
    assert pauses == {f"{canary['interval_seconds']}s"}
    # Every weight is judged before the next one: setWeight, pause, analysis.
    assert [next(iter(step)) for step in steps] == ["setWeight", "pause", "analysis"] * len(
        canary["steps"]
    )
    metrics = {metric["name"]: metric for metric in rendered[k8s.ANALYSIS_FILE]["spec"]["metrics"]}
    limits = {
        "canary-requests": f">= {canary['min_requests']}",
        "error-rate": f"<= {canary['max_error_rate']}",
        "p95-latency-ratio": f"<= {canary['max_p95_ratio']}",
        "score-psi": f"<= {canary['max_score_psi']}",
    }
    for name, limit in limits.items():
        assert metrics[name]["successCondition"].endswith(f"result[0] {limit}")
        provider = metrics[name]["provider"]["prometheus"]
        assert provider["address"] == params["k8s"]["prometheus_address"]
        assert f"[{canary['interval_seconds']}s]" in provider["query"]


def test_score_shift_query_covers_every_bucket_of_the_service() -> None:
    query = k8s.score_psi_query("60s")
    for bound in [*SCORE_BUCKETS, "+Inf"]:
        assert f'"le", "{bound}"' in query
    canary, stable = k8s.argument("canary-hash"), k8s.argument("stable-hash")
    assert query.count(canary) == query.count(stable) > 0


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("canary", "steps", [5, 50], "canary.steps"),
        ("canary", "steps", [50, 25, 100], "canary.steps"),
        ("canary", "max_error_rate", 1.5, "canary.max_error_rate"),
        ("k8s", "prometheus_address", "prometheus:9090", "k8s.prometheus_address"),
        ("k8s", "rollout_timeout_seconds", 10, "k8s.rollout_timeout_seconds"),
        ("k8s", "prometheus_url", "http://p:9090", "k8s.prometheus_url"),
        ("canary", "min_requests", "50", "canary.min_requests"),
    ],
)
def test_a_bad_setting_is_named_and_nothing_is_written(
    params: dict, tmp_path: Path, monkeypatch, section: str, key: str, value, named: str
) -> None:
    bad = copy.deepcopy(params)
    bad[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "deploy" / "k8s").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["render-k8s"])
    assert result.exit_code == 1
    assert f"params.yaml: {named} is" in result.output
    assert list((tmp_path / "deploy" / "k8s").iterdir()) == []


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (("canary", "max_score_psi"), "canary.max_score_psi is missing"),
        (("k8s",), "k8s is missing"),
    ],
)
def test_a_missing_setting_is_named(params: dict, drop: tuple, message: str) -> None:
    bad = copy.deepcopy(params)
    section = bad
    for key in drop[:-1]:
        section = section[key]
    del section[drop[-1]]
    with pytest.raises(ParamsError, match=re.escape(message)):
        k8s.render(parse_settings(bad))


def test_render_check_reports_a_stale_manifest(tmp_path: Path, monkeypatch) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "deploy" / "k8s", tmp_path / "deploy" / "k8s")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["render-k8s", "--check"]).exit_code == 0
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["canary"]["steps"] = [100]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stale = runner.invoke(app, ["render-k8s", "--check"])
    assert stale.exit_code == 1 and "rollout.yaml" in stale.output
    assert runner.invoke(app, ["render-k8s"]).exit_code == 0
    rollout = yaml.safe_load((tmp_path / "deploy" / "k8s" / k8s.ROLLOUT_FILE).read_text())
    assert rollout["spec"]["strategy"]["canary"]["steps"][0] == {"setWeight": 100}


def test_release_overlay_pins_the_pushed_digest(tmp_path: Path, monkeypatch) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "deploy" / "k8s", tmp_path / "deploy" / "k8s")
    monkeypatch.chdir(tmp_path)
    image = f"ghcr.io/acme/{{ cookiecutter.project }}@{DIGEST}"
    assert runner.invoke(app, ["k8s-release", "--image", image]).exit_code == 0
    overlay = yaml.safe_load((tmp_path / K8S_RELEASE_DIR / "kustomization.yaml").read_text())
    base = yaml.safe_load((tmp_path / "deploy" / "k8s" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../deploy/k8s"]
    assert overlay["images"] == [
        {
            "name": base["images"][0]["newName"],
            "newName": "ghcr.io/acme/{{ cookiecutter.project }}",
            "digest": DIGEST,
        }
    ]


@pytest.mark.parametrize(
    "image", ["", "GHCR.io/Acme/x@sha256:00", "ghcr.io/acme/x@sha256:short", "no tag"]
)
def test_a_bad_image_is_refused_before_anything_is_written(
    image: str, tmp_path: Path, monkeypatch
) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "deploy" / "k8s", tmp_path / "deploy" / "k8s")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["k8s-release", "--image", image])
    assert result.exit_code == 1 and "is not an image reference" in result.output
    assert not (tmp_path / K8S_RELEASE_DIR).exists()
