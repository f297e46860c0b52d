"""Alert rules come from params.yaml, and retrain.yml listens to the event `monitor` sends."""

from __future__ import annotations

from pathlib import Path

import yaml

from {{ cookiecutter.package }}.config import (
    ALERT_RULES,
    ALERT_TESTS,
    MonitoringSettings,
    parse_settings,
)
from {{ cookiecutter.package }}.monitoring.alerts import render_rules, render_tests

ROOT = Path(__file__).resolve().parents[1]


def settings(**alerts: float) -> MonitoringSettings:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitoring"]["alerts"] |= alerts
    return parse_settings(params).monitoring


def test_committed_rules_and_their_tests_equal_the_rendering_of_params() -> None:
    assert (ROOT / ALERT_RULES).read_text() == render_rules(settings()), (
        "run `make monitoring-rules`"
    )
    assert (ROOT / ALERT_TESTS).read_text() == render_tests(settings())


def test_each_threshold_reaches_its_rule() -> None:
    changed = settings(
        error_rate=0.07,
        latency_p95_seconds=1.25,
        rejected_rate=0.33,
        score_shift=0.04,
        accuracy_floor=0.61,
        for_minutes=7,
    )
    rules = {
        rule["alert"]: rule for rule in yaml.safe_load(render_rules(changed))["groups"][0]["rules"]
    }
    assert rules["ModelServiceErrors"]["expr"].endswith("> 0.07")
    assert rules["ModelServiceSlow"]["expr"].endswith("> 1.25")
    assert rules["ModelRequestsRejected"]["expr"].endswith("> 0.33")
    assert rules["ModelScoreShift"]["expr"].endswith("> 0.04")
    assert rules["ModelAccuracyBelowFloor"]["expr"].endswith("< 0.61")
    assert {rule["for"] for rule in rules.values()} == {"7m"}


def test_the_retraining_workflow_listens_to_the_event_monitor_sends() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/retrain.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert settings().event_type in triggers["repository_dispatch"]["types"]
