"""Watch live traffic and its outcomes; when the model no longer fits, ask GitHub to retrain.

`{{ cookiecutter.package }} monitor` (``make monitor``; deploy/ runs it on params.yaml
``monitoring.schedule``):

1. reads the samples the service kept (serving/sampling.py) over the last
   ``monitoring.window_hours``;
2. compares their contract fields and scores with the training split and the model's scores of
   it, through the drift module (monitoring/drift.py, thresholds in params.yaml ``drift:``), and
   the share of positive predictions and the score distribution with the canary's noise-aware
   test (monitoring/shift.py);
3. computes model quality from the labels `feedback` joined so far (monitoring/quality.py);
4. writes ``reports/monitor.json``, ``reports/quality.{json,md,prom}`` and gauges in the
   textfile-collector format (``reports/monitor.prom``);
5. on drift, a prediction shift or a quality drop, starts retrain.yml through
   ``workflow_dispatch`` (monitoring/dispatch.py) with the trigger (``monitoring.event_type``,
   or ``monitoring.quality.event_type`` for a quality drop) and the reasons. Without
   ``GITHUB_TOKEN`` it prints the exact request instead.

Exit status: 0 nothing to retrain for (or too few samples to judge), 3 retraining asked for,
1 a problem to fix.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.config import (
    MONITOR_RECORD,
    MONITOR_TEXTFILE,
    TRAIN_SPLIT,
    DriftSettings,
    EvaluateSettings,
    MonitoringSettings,
    Settings,
)
from {{ cookiecutter.package }}.contract.records import contract_kinds
from {{ cookiecutter.package }}.data import read_table
from {{ cookiecutter.package }}.monitoring import quality as model_quality
from {{ cookiecutter.package }}.monitoring.dispatch import (
    TOKEN_ENV,
    Dispatch,
    MonitorError,
    request,
    send,
    target,
)
from {{ cookiecutter.package }}.monitoring.feedback import read_labelled, store
from {{ cookiecutter.package }}.monitoring.shift import prediction_shift
from {{ cookiecutter.package }}.monitoring.shift import to_dict as shift_dict
from {{ cookiecutter.package }}.serving.choice import Choice, load
from {{ cookiecutter.package }}.serving.sampling import sink_of
from {{ cookiecutter.package }}.serving.sink import SCORE, VERSION, read_window

__all__ = ["DRIFT_EXIT_CODE", "MonitorError", "Outcome", "monitor", "run", "summary"]

DRIFT_EXIT_CODE = 3  # retraining asked for: drift, a prediction shift or a quality drop
QualityPaths = tuple[Path, Path, Path | None]


@dataclass(frozen=True)
class Outcome:
    """What one monitor run found and did; ``record`` is reports/monitor.json."""

    status: str  # no_drift | drift | too_few_samples: the served window against training
    record: dict[str, Any]
    dispatch: Dispatch | None = None
    sent: bool = False

    @property
    def exit_code(self) -> int:
        return DRIFT_EXIT_CODE if self.record.get("reasons") else 0


def judge(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_scores: np.ndarray,
    current_scores: np.ndarray,
    drift_settings: Any,
) -> Any:
    """The one call into the drift module (a rename there is a change here only)."""
    from {{ cookiecutter.package }}.monitoring.drift import drift

    return drift(
        reference,
        current,
        contract_kinds(),
        drift_settings,
        scores=(reference_scores, current_scores),
    )


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    model_quality.atomic(path, json.dumps(record, indent=2, default=str) + "\n")


def write_textfile(path: Path, record: Mapping[str, Any]) -> None:
    """Gauges for Prometheus' textfile collector (node_exporter --collector.textfile.directory).

    Written to a temporary file and renamed, so the collector never reads half a file.
    """
    drifted = record.get("drift", {}).get("drifted_columns", [])
    signals = record.get("shift", {}).get("signals", {})
    shift = "model_prediction_shift_psi"
    gauges = [
        (
            "model_drift_detected",
            "1 when the last `monitor` run found drift, else 0",
            [f"model_drift_detected {int(record['status'] == 'drift')}"],
        ),
        (
            "model_drifted_columns",
            "Columns (and the score) that drifted in the last window",
            [f"model_drifted_columns {len(drifted)}"],
        ),
        (
            shift,
            "PSI less sampling noise of the window's predictions against training, by signal",
            [
                f"{shift}{model_quality.prom_labels(signal=name)} {signal['psi']:.6g}"
                for name, signal in signals.items()
            ],
        ),
        (
            "model_monitor_samples",
            "Prediction samples in the last monitored window",
            [f"model_monitor_samples {record['window']['samples']}"],
        ),
        (
            "model_monitor_last_run_timestamp_seconds",
            "When `monitor` last finished",
            [f"model_monitor_last_run_timestamp_seconds {time.time():.0f}"],
        ),
    ]
    model_quality.atomic(path, model_quality.gauge_text(gauges))


def _served_window(
    settings: MonitoringSettings,
    drift_settings: DriftSettings,
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    samples: pd.DataFrame,
    evaluate: EvaluateSettings | None,
) -> dict[str, Any]:
    """Drift of the window's inputs and scores, and the shift of its predictions."""
    if len(samples) < drift_settings.min_rows:
        return {
            "status": "too_few_samples",
            "reason": f"{len(samples)} samples in the last {settings.window_hours:g} h; drift "
            f"needs {drift_settings.min_rows} (drift.min_rows)",
        }
    features = list(contract_kinds())
    missing = [name for name in features if name not in samples.columns]
    if missing:
        raise MonitorError(
            f"samples in {settings.sink} lack contract columns {missing}: were they written "
            "by this project's service?"
        )
    current = samples[SCORE].to_numpy()
    report = judge(
        reference[features], samples[features], reference_scores, current, drift_settings
    )
    found: dict[str, Any] = {"drift": report.to_dict(), "reasons": []}
    if report.drifted:
        columns = report.drifted_columns
        found["reasons"].append(f"drift in {len(columns)} columns: {', '.join(columns)}")
    if evaluate is not None:
        signals = prediction_shift(reference_scores, current, evaluate.threshold, drift_settings)
        found["shift"] = shift_dict(signals)
        found["reasons"] += [f"prediction shift: {s.reason()}" for s in signals if s.shifted]
    return found | {"status": "drift" if found["reasons"] else "no_drift"}


def monitor(
    settings: MonitoringSettings,
    drift_settings: DriftSettings,
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    *,
    evaluate: EvaluateSettings | None = None,
    now: datetime | None = None,
    repository: str | None = None,
    api_url: str | None = None,
    token: str | None = None,
    report_path: Path = MONITOR_RECORD,
    textfile: Path | None = MONITOR_TEXTFILE,
    quality_paths: QualityPaths = model_quality.PATHS,
    reference_name: str = "",
) -> Outcome:
    """One monitoring run over the window ending ``now``; asks for retraining when the served
    window drifted or shifted, or (with ``evaluate``: its limits) labelled quality dropped."""
    repository, api = target(repository, api_url, token)
    until = now or datetime.now(UTC)
    since = until - timedelta(hours=settings.window_hours)
    samples = read_window(settings.sink, since, until)
    window = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "hours": settings.window_hours,
        "samples": len(samples),
        "model_versions": sorted(samples[VERSION].astype(str).unique()) if len(samples) else [],
    }
    record: dict[str, Any] = {
        "window": window,
        "sink": settings.sink,
        "reference": {"source": reference_name, "rows": len(reference)},
    }
    record |= _served_window(
        settings, drift_settings, reference, reference_scores, samples, evaluate
    )
    reasons, trigger = list(record.pop("reasons", [])), settings.event_type
    if evaluate is not None:
        labelled = read_labelled(store(settings))
        found = model_quality.quality(labelled, evaluate, settings.quality, until)
        model_quality.write(found, quality_paths)
        record["quality"] = {key: found[key] for key in ("status", "reasons", "labels")}
        if found["reasons"]:
            reasons, trigger = [*found["reasons"], *reasons], settings.quality.event_type
    record["reasons"] = reasons
    dispatch = None
    if reasons:
        dispatch = request(
            trigger,
            "; ".join(reasons),
            settings.retrain_workflow,
            settings.retrain_ref,
            repository,
            api,
            token,
        )
    return _dispatched(Outcome(record["status"], record, dispatch), token, report_path, textfile)


def _dispatched(
    outcome: Outcome, token: str | None, report_path: Path, textfile: Path | None
) -> Outcome:
    """Send the outcome's dispatch when there is a token, and write the record either way."""
    record = outcome.record
    record["dispatch"] = outcome.dispatch.to_dict() if outcome.dispatch else None
    if outcome.dispatch is not None and token:
        try:
            send(outcome.dispatch)
        except MonitorError as error:  # keep the evidence, then say what failed
            record["dispatch"] |= {"sent": False, "error": str(error)}
            _write(record, report_path, textfile)
            raise
        outcome = Outcome(outcome.status, record, outcome.dispatch, sent=True)
    if record["dispatch"] is not None:
        record["dispatch"]["sent"] = outcome.sent
    _write(record, report_path, textfile)
    return outcome


def _write(record: dict[str, Any], report_path: Path, textfile: Path | None) -> None:
    write_json(report_path, record)
    if textfile is not None:
        write_textfile(textfile, record)


def read_reference(reference: str | Path) -> pd.DataFrame:
    """The training reference: a local file, or an fsspec URL (a cluster's object store)."""
    if "://" in str(reference):
        return pd.read_parquet(str(reference))
    if not Path(reference).exists():
        raise MonitorError(f"{reference} not found: run `make repro` (or pass --reference)")
    return read_table(Path(reference))


def run(
    settings: Settings,
    choice: Choice,
    reference: str | Path = TRAIN_SPLIT,
    *,
    repository: str | None = None,
    api_url: str | None = None,
    report_path: Path = MONITOR_RECORD,
    textfile: Path | None = MONITOR_TEXTFILE,
) -> Outcome:
    """``make monitor``: score the training reference with the chosen model, then ``monitor``."""
    token = os.environ.get(TOKEN_ENV) or None
    target(repository, api_url, token)  # a bad repository fails before any work
    frame = read_reference(reference)
    model, info = load(choice)
    scores = model.predict_proba(frame[list(contract_kinds())])[:, 1]
    return monitor(
        settings.monitoring.model_copy(update={"sink": sink_of(settings.monitoring.sink)}),
        settings.drift,
        frame,
        scores,
        evaluate=settings.evaluate,
        repository=repository,
        api_url=api_url,
        token=token,
        report_path=report_path,
        textfile=textfile,
        reference_name=f"{reference} scored by {info.name} v{info.version}",
    )


def summary(outcome: Outcome, report_path: Path = MONITOR_RECORD) -> list[str]:
    """What a run found and did, one line each (the dispatch itself is ``Dispatch.describe``)."""
    record, window = outcome.record, outcome.record["window"]
    lines = [
        f"{outcome.status.replace('_', ' ')}: {window['samples']} samples over the last "
        f"{window['hours']:g} h in {record['sink']} vs {record['reference']['rows']} reference "
        f"rows -> {report_path}"
    ]
    if "quality" in record:
        quality = record["quality"]
        lines.append(
            f"model quality: {quality['status'].replace('_', ' ')} ({quality['labels']} labels)"
        )
    lines += [f"retrain: {reason}" for reason in record["reasons"]]
    if outcome.dispatch is not None and outcome.sent:
        lines.append(f"sent {outcome.dispatch.trigger} to {outcome.dispatch.url}")
    elif outcome.dispatch is not None:
        lines.append(f"{TOKEN_ENV} is not set: the request that would start retraining is:")
    return lines
