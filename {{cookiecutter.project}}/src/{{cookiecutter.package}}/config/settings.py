"""params.yaml's sections as typed, read-only models: types and bounds, never values (every
default lives in params.yaml)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from {{ cookiecutter.package }}.modeling.metrics import METRICS, MetricName


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
