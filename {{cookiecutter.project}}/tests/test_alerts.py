"""Alert rules and the monitor's schedule come from params.yaml, and retrain.yml takes the
workflow_dispatch `monitor` sends."""

from __future__ import annotations

from pathlib import Path

import yaml

from {{ cookiecutter.package }}.config import ALERT_RULES, ALERT_TESTS, Settings, parse_settings
from {{ cookiecutter.package }}.monitoring import schedule
from {{ cookiecutter.package }}.monitoring.alerts import render_rules, render_tests
from {{ cookiecutter.package }}.monitoring.dispatch import INPUTS

ROOT = Path(__file__).resolve().parents[1]


def settings(at_least: dict | None = None, **alerts: float) -> Settings:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitoring"]["alerts"] |= alerts
    if at_least is not None:
        params["evaluate"]["at_least"] = at_least
    return parse_settings(params)


def test_committed_rules_and_their_tests_equal_the_rendering_of_params() -> None:
    current = settings()
    assert (ROOT / ALERT_RULES).read_text() == render_rules(current.monitoring, current.evaluate), (
        "run `make monitoring-rules`"
    )
    assert (ROOT / ALERT_TESTS).read_text() == render_tests(current.monitoring, current.evaluate)
    for name, text in schedule.render(current).items():
        assert (ROOT / schedule.SCHEDULE_DIR / name).read_text() == text, name


def test_each_threshold_reaches_its_rule() -> None:
    changed = settings(
        error_rate=0.07,
        latency_p95_seconds=1.25,
        rejected_rate=0.33,
        score_shift=0.04,
        samples_dropped=0.03,
        samples_stale_minutes=20,
        for_minutes=7,
        at_least={"roc_auc": 0.61, "recall": 0.4},
    )
    rendered = render_rules(changed.monitoring, changed.evaluate)
    rules = {rule["alert"]: rule for rule in yaml.safe_load(rendered)["groups"][0]["rules"]}
    assert rules["ModelServiceErrors"]["expr"].endswith("> 0.07")
    assert rules["ModelServiceSlow"]["expr"].endswith("> 1.25")
    assert rules["ModelRequestsRejected"]["expr"].endswith("> 0.33")
    assert rules["ModelScoreShift"]["expr"].endswith("> 0.04")
    assert rules["ModelSamplesDropped"]["expr"].endswith("> 0.03")
    stale = rules["ModelSamplesStale"]["expr"]
    assert "> 1200\n" in stale and "increase(model_samples_total[20m])" in stale
    quality = rules["ModelQualityBelowLimit"]["expr"]
    assert 'model_quality_bound{metric="roc_auc"}) < 0.61' in quality
    assert 'model_quality_bound{metric="recall"}) < 0.4' in quality
    assert {rule["for"] for rule in rules.values()} == {"7m"}
    # Without any evaluate limit there is nothing to compare quality with: no rule, no test.
    unlimited = settings(at_least={})
    assert "ModelQualityBelowLimit" not in render_rules(unlimited.monitoring, unlimited.evaluate)
    assert "ModelQualityBelowLimit" not in render_tests(unlimited.monitoring, unlimited.evaluate)


def test_the_retraining_workflow_listens_to_the_event_monitor_sends() -> None:
    current = settings().monitoring
    workflow = yaml.safe_load((ROOT / ".github/workflows" / current.retrain_workflow).read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    # workflow_dispatch with exactly the inputs monitor fills: GitHub refuses any other (422),
    # and the token it needs may only run workflows (Actions: write), not push code or tags.
    assert set(triggers["workflow_dispatch"]["inputs"]) == set(INPUTS)
    assert "repository_dispatch" not in triggers
