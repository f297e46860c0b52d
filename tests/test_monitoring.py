"""deploy/monitoring in a baked project: Prometheus accepts the rules and the scrape config, each
alert fires and stays quiet in its promtool unit tests, and the rules follow params.yaml.

promtool comes from Debian's `prometheus` package, which `make setup` installs when it can
(root and apt); without it these tests skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bakery import bake, run, tool_env

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: `make setup` installs Debian's prometheus package when run as "
    "root with apt; or install it yourself (apt-get install prometheus)",
)
# Metrics that exist: the service's (service.py), BentoML's HTTP metrics, the gauges `monitor`
# writes, and the model quality gauges `feedback` and `monitor` write (monitoring/quality.py).
SERVICE_METRICS = {
    "model_prediction_score_bucket",
    "model_prediction_score_sum",
    "model_prediction_score_count",
    "model_predictions_total",
    "model_rejected_requests_total",
    "model_info",
    "model_samples_total",
    "model_samples_dropped_total",
    "model_samples_last_written_timestamp_seconds",
}
BENTOML_METRICS = {
    "bentoml_service_request_total",
    "bentoml_service_request_duration_seconds_bucket",
    "bentoml_service_request_in_progress",
}
MONITOR_METRICS = {
    "model_drift_detected",
    "model_drifted_columns",
    "model_prediction_shift_psi",
    "model_monitor_samples",
    "model_monitor_last_run_timestamp_seconds",
}
QUALITY_METRICS = {
    "model_quality",
    "model_quality_bound",
    "model_quality_labels",
    "model_quality_last_run_timestamp_seconds",
}
KNOWN = SERVICE_METRICS | BENTOML_METRICS | MONITOR_METRICS | QUALITY_METRICS
METRIC = re.compile(r"\b((?:model|bentoml)_[a-z_]+)\b")
LABELS = re.compile(r"\bby\s*\([^)]*\)|\{[^}]*\}")  # grouping and matchers name labels


def metrics(expr: str) -> set[str]:
    return set(METRIC.findall(LABELS.sub("", expr)))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("monitoring"))


def promtool(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([PROMTOOL or "promtool", *args], cwd=cwd, check=check)


@needs_promtool
def test_rules_and_scrape_config_are_valid(project: Path) -> None:
    monitoring = project / "deploy/monitoring"
    assert (
        "SUCCESS: 9 rules found" in promtool("check", "rules", "alerts.yml", cwd=monitoring).stdout
    )
    promtool("check", "config", "prometheus.yml", cwd=monitoring)


@needs_promtool
def test_every_alert_fires_and_stays_quiet_in_its_unit_tests(project: Path) -> None:
    monitoring = project / "deploy/monitoring"
    cases = yaml.safe_load((monitoring / "alerts.test.yml").read_text())["tests"]
    rules = yaml.safe_load((monitoring / "alerts.yml").read_text())["groups"][0]["rules"]
    outcomes: dict[str, set[bool]] = {}
    for case in cases:
        for check in case["alert_rule_test"]:
            outcomes.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    assert outcomes == {rule["alert"]: {True, False} for rule in rules}
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml", cwd=monitoring).stdout


@needs_promtool
def test_a_threshold_out_of_step_with_the_tests_fails_them(tmp_path: Path, project: Path) -> None:
    copy = tmp_path / "monitoring"
    shutil.copytree(project / "deploy/monitoring", copy)
    rules = (copy / "alerts.yml").read_text()
    loosened = rules.replace("> 0.05\n", "> 0.5\n", 1)  # ModelServiceErrors: 5% -> 50%
    assert loosened != rules
    (copy / "alerts.yml").write_text(loosened)
    failed = promtool("test", "rules", "alerts.test.yml", cwd=copy, check=False)
    assert failed.returncode != 0
    assert "alertname: ModelServiceErrors" in failed.stdout + failed.stderr


@needs_promtool
def test_rules_rendered_from_other_params_still_pass_their_tests(project: Path) -> None:
    params_file = project / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["monitoring"]["window_hours"] = 6
    params["monitoring"]["alerts"] = {
        "error_rate": 0.01,
        "latency_p95_seconds": 2.5,
        "rejected_rate": 0.45,
        "score_shift": 0.03,
        "samples_dropped": 0.2,
        "samples_stale_minutes": 40,
        "for_minutes": 25,
    }
    # The quality alert's limits are the holdout limits, on both sides.
    limits = {"at_least": {"roc_auc": 0.9, "recall": 0.5}, "at_most": {"log_loss": 0.5}}
    params["evaluate"] |= limits
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    env = tool_env(extra={"PYTHONPATH": str(project / "src")})
    try:
        command = [sys.executable, "-m", package, "monitoring-rules"]
        stale = run([*command, "--check"], cwd=project, env=env, check=False)
        assert stale.returncode == 1 and "make monitoring-rules" in stale.stderr
        run(command, cwd=project, env=env)
        rules = (project / "deploy/monitoring/alerts.yml").read_text()
        assert "> 0.01\n" in rules and "for: 25m" in rules and "> 43200" in rules
        assert "> 0.2\n" in rules and "> 2400\n" in rules and "total[40m]" in rules
        assert '{metric="recall"}) < 0.5' in rules and '{metric="log_loss"}) > 0.5' in rules
        promtool("test", "rules", "alerts.test.yml", cwd=project / "deploy/monitoring")
    finally:
        params_file.write_text(original)
        run([sys.executable, "-m", package, "monitoring-rules"], cwd=project, env=env)


def test_rules_and_dashboard_read_only_metrics_that_exist(project: Path) -> None:
    monitoring = project / "deploy/monitoring"
    rules = yaml.safe_load((monitoring / "alerts.yml").read_text())["groups"][0]["rules"]
    in_rules = set().union(*(metrics(rule["expr"]) for rule in rules))
    dashboard = json.loads((monitoring / "dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    in_dashboard = set().union(*(metrics(expr) for expr in exprs))
    assert in_rules <= KNOWN and in_dashboard <= KNOWN, (in_rules | in_dashboard) - KNOWN
    service = next((project / "src").rglob("service.py")).read_text()
    exported = ("model_prediction_score", "model_predictions", "model_rejected_requests")
    exported += ("model_samples", "model_samples_dropped")
    exported += ("model_samples_last_written_timestamp_seconds",)
    for name in exported:
        assert f'name="{name}"' in service  # the service still exports what the rules read
    read = {"model_drift_detected", "model_quality_bound", "model_samples_dropped_total"}
    assert read <= in_rules
    assert "model_rejected_requests_total" in in_dashboard
