"""params.yaml as typed settings, and the files the pipeline passes between stages.

Every module reads its settings from ``load_settings()``, never from a raw dict, so a bad value
is caught once, here, with one line naming the key, the value and what is allowed. Every default
lives in params.yaml: these models declare types and bounds, not values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from {{ cookiecutter.package }}.modeling.metrics import METRICS, MetricName

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


class ParamsError(ValueError):
    """params.yaml is missing or holds a value the pipeline cannot use."""


class Strict(BaseModel):
    """A params.yaml section: no unknown keys, no silent type coercion, read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Fraction = Annotated[float, Field(gt=0, lt=1)]
Positive = Annotated[int, Field(ge=1)]
Port = Annotated[int, Field(ge=1, le=65535)]


class PiiSettings(Strict):
    hash: list[str]
    drop: list[str]


class DataSettings(Strict):
    source: str
    raw: str
    target: str
    # The target's value that the model predicts the probability of: text, or a whole number
    # for a 0/1 target (what `adopt` writes, in the target column's own type).
    positive_class: str | int
    id: str | None
    pii: PiiSettings
    test_size: Fraction


class SklearnParams(Strict):
    learning_rate: Annotated[float, Field(gt=0)]
    max_iter: Positive
    max_leaf_nodes: Annotated[int, Field(ge=2)]
    min_samples_leaf: Positive
    l2_regularization: Annotated[float, Field(ge=0)]
    early_stopping: bool
    validation_fraction: Fraction
{%- if cookiecutter.model == 'torch' %}


class TorchParams(Strict):
    hidden_sizes: Annotated[list[Positive], Field(min_length=1)]
    dropout: Annotated[float, Field(ge=0, lt=1)]
    learning_rate: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    batch_size: Positive
    max_epochs: Positive
    patience: Positive
    validation_fraction: Fraction
    device: Literal["auto", "cpu", "cuda"]
    mixed_precision: Literal["auto"] | bool
    capture: Literal["auto"] | bool
    num_workers: Literal["auto"] | Annotated[int, Field(ge=0)]
    cpu_threads: Literal["auto"] | Positive
{%- endif %}


class TrainSettings(Strict):
    model: Literal[{% if cookiecutter.model == 'torch' %}"sklearn", "torch"{% else %}"sklearn"{% endif %}]
    sklearn: SklearnParams
{%- if cookiecutter.model == 'torch' %}
    torch: TorchParams
{%- endif %}

    def family_params(self) -> dict[str, Any]:
        """The hyperparameters of the chosen family, as saved with the model."""
        return getattr(self, self.model).model_dump()


class EvaluateSettings(Strict):
    threshold: Fraction
    primary_metric: MetricName
    # Holdout limits, named by direction: `at_least` for metrics where higher is better,
    # `at_most` where lower is better (each metric's `limit_key`).
    at_least: dict[MetricName, float]
    at_most: dict[MetricName, float]

    @field_validator("at_least", "at_most")
    @classmethod
    def _limits_follow_direction(cls, limits: dict[str, float], info: Any) -> dict[str, float]:
        for name in limits:
            metric = METRICS[name]
            if metric.limit_key != info.field_name:
                raise ValueError(
                    f"{metric.direction} is better for {name}: put it under "
                    f"evaluate.{metric.limit_key}"
                )
        return limits

    def limit(self, metric: str) -> float | None:
        """The holdout limit of ``metric`` in its own direction, if params.yaml sets one."""
        limits: dict[str, float] = getattr(self, METRICS[metric].limit_key)
        return limits.get(metric)


class ExplainSettings(Strict):
    repeats: Positive
    top: Positive


class GateSettings(Strict):
    max_regression: Annotated[float, Field(ge=0)]


class RegistrySettings(Strict):
    tracking_uri: str
    model_name: str
    experiment: str
    alias: str


class PromotionSettings(Strict):
    min_delta: Annotated[float, Field(ge=0)]
    guardrails: dict[MetricName, Annotated[float, Field(ge=0)]]


# --- drift (monitoring/drift.py; the verdict rule is in its docstring) ---
NumericStat = Literal["wasserstein", "psi"]
CategoricalStat = Literal["jensen_shannon", "psi"]
Distance = Annotated[float, Field(gt=0)]


class DriftThresholds(Strict):
    """One column's overrides in ``drift.features``; a key left out keeps the global value."""

    psi: Distance | None = None
    ks_pvalue: Fraction | None = None
    wasserstein: Distance | None = None
    chi2_pvalue: Fraction | None = None
    jensen_shannon: Distance | None = None
    null_share: Fraction | None = None
    numeric_stat: NumericStat | None = None
    categorical_stat: CategoricalStat | None = None


class DriftLimits(Strict):
    """The thresholds that judge one column."""

    psi: Distance
    ks_pvalue: Fraction
    wasserstein: Distance
    chi2_pvalue: Fraction
    jensen_shannon: Distance
    null_share: Fraction
    numeric_stat: NumericStat
    categorical_stat: CategoricalStat


class DriftSettings(DriftLimits):
    bins: Annotated[int, Field(ge=2, le=1000)]
    min_rows: Positive
    features: dict[str, DriftThresholds]

    def limits(self, column: str) -> DriftLimits:
        """The global thresholds with ``column``'s overrides applied."""
        merged = self.model_dump(include=set(DriftLimits.model_fields))
        if column in self.features:
            merged.update(self.features[column].model_dump(exclude_none=True))
        return DriftLimits.model_validate(merged)


class AlertSettings(Strict):
    """monitoring.alerts: rendered into deploy/monitoring/alerts.yml (`make monitoring-rules`)."""

    error_rate: Fraction
    latency_p95_seconds: Annotated[float, Field(gt=0)]
    rejected_rate: Fraction
    score_shift: Fraction
    samples_dropped: Fraction
    samples_stale_minutes: Positive
    for_minutes: Positive


class QualitySettings(Strict):
    window_hours: Annotated[float, Field(gt=0)]
    windows: Positive
    min_labels: Positive
    label_delay_hours: Annotated[float, Field(gt=0)]
    significance: Fraction
    event_type: Annotated[str, Field(pattern=r"^[\w.-]{1,100}$")]  # retrain.yml `trigger`


class RetentionSettings(Strict):
    """How long, and how much, a local sink keeps (serving/sink.py)."""

    max_age_hours: Annotated[float, Field(gt=0)]
    max_megabytes: Annotated[float, Field(gt=0)]


class MonitoringSettings(Strict):
    """Prediction sampling in the service, `monitor` (monitoring/monitor.py) and `feedback`."""

    sample_rate: Annotated[float, Field(ge=0, le=1)]
    sink: Annotated[str, Field(min_length=1)]
    window_hours: Annotated[float, Field(gt=0)]
    schedule: Annotated[str, Field(pattern=r"^\s*(\S+\s+){4}\S+\s*$")]  # schedule.py checks
    event_type: Annotated[str, Field(pattern=r"^[\w.-]{1,100}$")]  # retrain.yml `trigger`
    retrain_workflow: Annotated[str, Field(pattern=r"^[\w.-]+\.ya?ml$")]
    retrain_ref: Annotated[str, Field(min_length=1)]
    labels: Annotated[str, Field(min_length=1)]
    inbox: str
    quality: QualitySettings
    retention: RetentionSettings
    alerts: AlertSettings
{%- if cookiecutter.deploy == 'kubernetes' %}
    cluster_root: Annotated[str, Field(min_length=1)]
{%- endif %}

    @model_validator(mode="after")
    def _retention_keeps_what_is_read(self) -> MonitoringSettings:
        reads = {  # how far back each reader goes, and the key that sets it
            "monitoring.window_hours": (self.window_hours, "`monitor` reads"),
            "monitoring.quality.label_delay_hours": (
                2 * self.quality.label_delay_hours,
                "`feedback` joins labels to samples up to twice",
            ),
        }
        key, (hours, who) = max(reads.items(), key=lambda item: item[1][0])
        kept = self.retention.max_age_hours
        if kept < hours:
            problem = f"{who} {key}, {hours:g} h back: raise it to {hours:g} or lower {key}"
            error = PydanticCustomError("value_error", problem)
            where = ("retention", "max_age_hours")
            shown = int(kept) if kept.is_integer() else kept  # as params.yaml wrote it
            details = InitErrorDetails(type=error, loc=where, input=shown)
            raise ValidationError.from_exception_data("retention", [details])
        return self


class LocalCanarySettings(Strict):
    """`canary.local`: the canary on one host behind Caddy (`make canary`)."""

    poll_seconds: Annotated[float, Field(gt=0)]
    max_wait_seconds: Annotated[float, Field(ge=0)]
    significance: Fraction
    front_port: Port
    admin_port: Port
    stable_port: Port
    canary_port: Port
    start_timeout_seconds: Annotated[float, Field(gt=0)]
    # A release on the serving host (`make release-canary`): the front's public bind address,
    # and where the host keeps what outlives a deploy job (bentos, servers, front).
    front_host: Annotated[str, Field(min_length=1)]
    home: Annotated[str, Field(min_length=1)]


class CanarySettings(Strict):
    """The steps and thresholds of every canary deploy (local behind Caddy, or Kubernetes)."""

    steps: list[Annotated[int, Field(ge=1, le=100)]]
    interval_seconds: Positive
    min_requests: Positive
    max_error_rate: Annotated[float, Field(ge=0, le=1)]
    max_p95_ratio: Annotated[float, Field(gt=0)]
    max_score_psi: Annotated[float, Field(gt=0)]
    local: LocalCanarySettings

    @field_validator("steps")
    @classmethod
    def _steps_climb_to_100(cls, steps: list[int]) -> list[int]:
        if not steps or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError("must be increasing percentages ending at 100 ([100] is blue-green)")
        return steps
{%- if cookiecutter.deploy == 'kubernetes' %}


class KubernetesSettings(Strict):
    """Where Argo Rollouts' analysis reads metrics, and how long `make rollout` waits."""

    prometheus_address: Annotated[str, Field(pattern=r"^https?://\S+$")]
    rollout_timeout_seconds: Positive
{%- endif %}


class Settings(Strict):
    seed: Annotated[int, Field(ge=0)]
    data: DataSettings
    train: TrainSettings
    evaluate: EvaluateSettings
    explain: ExplainSettings
    gate: GateSettings
    registry: RegistrySettings
    promotion: PromotionSettings
    drift: DriftSettings
    monitoring: MonitoringSettings
    canary: CanarySettings
{%- if cookiecutter.deploy == 'kubernetes' %}
    k8s: KubernetesSettings
{%- endif %}


def load_settings(path: Path = PARAMS_FILE) -> Settings:
    """params.yaml, validated; a ParamsError names every bad key, one line each."""
    if not path.exists():
        raise ParamsError(
            f"{path} not found: run commands from the project root, where params.yaml lives."
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    return parse_settings(raw, path)


def parse_settings(raw: Any, source: Path = PARAMS_FILE) -> Settings:
    """Settings from already-parsed params; errors name ``source`` and each bad key."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("\n".join(_sentences(source, error, raw))) from None


def _sentences(path: Path, error: ValidationError, raw: Any = None) -> list[str]:
    lines: dict[str, str] = {}  # one line per key: a union's branches add to it
    for problem in error.errors(include_url=False):
        key = _key(raw, problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if key in lines:
            lines[key] += f", or {message[0].lower()}{message[1:]}"
        elif problem["type"] == "missing":
            lines[key] = f"{path}: {key} is missing; add it (see the comments in {path})"
        elif problem["type"] == "extra_forbidden":
            lines[key] = f"{path}: {key} is not a setting; remove it or fix its spelling"
        else:
            lines[key] = f"{path}: {key} is {problem['input']!r}: {message}"
    return list(lines.values())


def _key(raw: Any, loc: tuple[int | str, ...]) -> str:
    """The params.yaml key of an error: its location without pydantic's validator and union
    branch names (``literal['auto']``, ``constrained-int``), which are not keys of the file."""
    parts, node = [], raw
    for index, part in enumerate(loc):
        if isinstance(node, dict) and (part in node or index == len(loc) - 1):
            parts.append(str(part))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            parts.append(str(part))
            node = node[part] if part < len(node) else None
        elif raw is None and not str(part).startswith("function"):
            parts.append(str(part))  # no input to walk: keep what pydantic says
    return ".".join(parts)


def stale_files(rendered: Mapping[Path, str]) -> list[Path]:
    """Files rendered from params.yaml whose text on disk differs from a fresh rendering."""
    return [
        path for path, text in rendered.items() if not path.exists() or path.read_text() != text
    ]


def sync_rendered(rendered: Mapping[Path, str], check: bool, command: str) -> list[Path]:
    """Write files rendered from params.yaml; with ``check``, write nothing and fail naming the
    stale ones and the ``command`` that renders them."""
    if check:
        if stale := stale_files(rendered):
            raise ParamsError(
                f"{', '.join(map(str, stale))} differ from params.yaml: run `{command}` and "
                "commit the result"
            )
        return []
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(rendered)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"train.sklearn.max_iter": 300, ...}`` (MLflow params, diffs)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat
