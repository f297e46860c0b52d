"""Every file the pipeline, the Makefile, dvc.yaml and the workflows pass around, named once.

`tests/test_paths.py` fails when dvc.yaml, the Makefile or a workflow names a path not here.
"""

from __future__ import annotations

from pathlib import Path

PARAMS_FILE = Path("params.yaml")
# The files `adopt` writes from a dataset: the data contract and the engineered features.
SCHEMA_FILE = Path("src/{{ cookiecutter.package }}/contract/schema.py")
ENGINEERED_FILE = Path("src/{{ cookiecutter.package }}/modeling/engineered.py")

# Files passed between DVC stages; dvc.yaml lists the same paths.
ANONYMISED = Path("data/interim/anonymised.parquet")
TRAIN_SPLIT = Path("data/processed/train.parquet")
TEST_SPLIT = Path("data/processed/test.parquet")
VALIDATION_REPORT = Path("reports/validation.json")
VALIDATION_MARKDOWN = VALIDATION_REPORT.with_suffix(".md")
MODEL_DIR = Path("models/model")
METRICS_FILE = Path("metrics.json")
PLOTS_DIR = Path("reports/plots")
TRAINING_INFO = Path("reports/training.json")
REGISTRY_RECORD = Path("reports/registry.json")
IMPORTANCE = Path("reports/importance.json")
# The PR model report (`make report`) and the PNG plots it links, now and at the base ref.
REPORT = Path("report.md")
REPORT_ASSETS = Path("reports/report")
# Continuous training: the previous training split (set aside before new data lands, the drift
# reference of a retraining run), the drift report (JSON; its markdown section next to it), the
# champion/challenger decision and the retraining pull request's body and patch.
PREVIOUS_TRAIN_SPLIT = Path("data/reference/train.parquet")
DRIFT_REPORT = Path("reports/drift.json")
DRIFT_MARKDOWN = DRIFT_REPORT.with_suffix(".md")
PROMOTION_RECORD = Path("reports/promotion.json")
RETRAIN_BODY = Path("reports/retrain.md")
RETRAIN_PATCH = Path("reports/retrain.patch")
# Monitoring: the run's record, its gauges for Prometheus' textfile collector, the alert rules
# (with their promtool tests) rendered from params.yaml, `feedback`'s record, model quality.
MONITOR_RECORD = Path("reports/monitor.json")
MONITOR_TEXTFILE = Path("reports/monitor.prom")
ALERT_RULES = Path("deploy/monitoring/alerts.yml")
ALERT_TESTS = Path("deploy/monitoring/alerts.test.yml")
FEEDBACK_RECORD = Path("reports/feedback.json")
QUALITY_REPORT = Path("reports/quality.json")
QUALITY_MARKDOWN, QUALITY_TEXTFILE = (QUALITY_REPORT.with_suffix(s) for s in (".md", ".prom"))
# Scratch outputs of make targets (bentofiles, logs, downloaded tools): never committed.
BUILD_DIR = Path("build")
# Serving: the BentoML service (`bentoml serve` target), its bentofile and the one `make build`
# writes with the chosen model's pins.
SERVICE = "{{ cookiecutter.package }}.serving.service:ModelService"
BENTOFILE = Path("bentofile.yaml")
BUILD_BENTOFILE = BUILD_DIR / "bentofile.yaml"
# Deploys: the local canary's analysis and its servers' logs, the champion tag's bundle.
CANARY_REPORT = Path("reports/canary.json")
CANARY_SUMMARY = CANARY_REPORT.with_suffix(".md")
CANARY_WORKDIR = BUILD_DIR / "canary"
# A release (deploy.yml): what train.yml's run of a merged commit left for its deploy (the
# changes its pipeline made, as a patch, and the registry record), and the bento exported from
# it, named by its digest, with the record of what it carries.
RELEASE_DIR = BUILD_DIR / "release"
RELEASE_PATCH = RELEASE_DIR / "release.patch"
RELEASE_RECORD = RELEASE_DIR / "release.json"
BENTO_DIR = BUILD_DIR / "bento"
BENTO_RECORD = BENTO_DIR / "bento.json"
BENTO_REPLAY = BENTO_DIR / "replay.parquet"
{%- if cookiecutter.deploy == 'kubernetes' %}
# Kubernetes: the manifests rendered from params.yaml, and a release's overlay of them.
K8S_DIR = Path("deploy/k8s")
K8S_RELEASE_DIR = BUILD_DIR / "k8s-release"
{%- endif %}
SCHEDULE_DIR = Path("deploy/{{ 'k8s' if cookiecutter.deploy == 'kubernetes' else 'local' }}")  # the monitor's {% if cookiecutter.deploy == 'kubernetes' %}CronJob{% else %}timer{% endif %}
