"""Watch live traffic: compare recent prediction samples with the training reference, and on
drift ask GitHub to retrain.

`{{ cookiecutter.package }} monitor` (``make monitor``, or a scheduled job next to the service):

1. reads the samples the service kept (serving/sampling.py) over the last
   ``monitoring.window_hours``;
2. compares their contract fields and scores with the training split and the model's scores of
   it, through the drift module (monitoring/drift.py, thresholds in params.yaml ``drift:``);
3. writes ``reports/monitor.json`` and Prometheus gauges in the textfile-collector format
   (``reports/monitor.prom``: ``model_drift_detected``, ``model_drifted_columns``);
4. on drift, sends GitHub's ``repository_dispatch`` event ``monitoring.event_type``, which starts
   the retraining workflow. Without ``GITHUB_TOKEN`` it prints the exact request instead.

Exit status: 0 no drift (or too few samples to judge), 3 drift, 1 a problem to fix.

The token needs write access to the repository's contents: a fine-grained personal access
token or GitHub App token with "Contents: read and write" (metadata read is implied), or a
classic token with the ``repo`` scope (``public_repo`` for a public repository).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.config import (
    MONITOR_RECORD,
    MONITOR_TEXTFILE,
    TRAIN_SPLIT,
    MonitoringSettings,
    Settings,
)
from {{ cookiecutter.package }}.contract.records import contract_kinds
from {{ cookiecutter.package }}.data import read_table
from {{ cookiecutter.package }}.serving.choice import Choice, load
from {{ cookiecutter.package }}.serving.sampling import SCORE, VERSION, read_window

TOKEN_ENV = "GITHUB_TOKEN"
REPOSITORY_ENV = "GITHUB_REPOSITORY"
API_URL_ENV = "GITHUB_API_URL"  # set on GitHub Enterprise Server runners
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
DRIFT_EXIT_CODE = 3
MAX_PAYLOAD_KEYS = 10  # GitHub refuses a client_payload with more top-level keys
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class MonitorError(ValueError):
    """A problem the user can fix; the message names it and the fix."""


@dataclass(frozen=True)
class Dispatch:
    """One ``POST /repos/{owner}/{repo}/dispatches`` request, as sent or as it would be."""

    url: str
    body: dict[str, Any]
    token: str | None = field(default=None, repr=False)
    method: str = "POST"

    def headers(self, redact: bool = True) -> dict[str, str]:
        shown = "***" if self.token else f"<{TOKEN_ENV} not set>"
        return {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {shown if redact or not self.token else self.token}",
            "X-GitHub-Api-Version": API_VERSION,
            "Content-Type": "application/json",
        }

    def describe(self) -> str:
        """The request as text, token redacted: method and URL, headers, blank line, body."""
        lines = [f"{self.method} {self.url}"]
        lines += [f"{name}: {value}" for name, value in self.headers().items()]
        return "\n".join([*lines, "", json.dumps(self.body, indent=2)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": self.headers(),
            "body": self.body,
        }


@dataclass(frozen=True)
class Outcome:
    """What one monitor run found and did; ``record`` is reports/monitor.json."""

    status: str  # no_drift | drift | too_few_samples
    record: dict[str, Any]
    dispatch: Dispatch | None = None
    sent: bool = False

    @property
    def exit_code(self) -> int:
        return DRIFT_EXIT_CODE if self.status == "drift" else 0


def target(repository: str | None, api_url: str | None, token: str | None) -> tuple[str, str]:
    """The repository and API base to dispatch to; checked before anything is read."""
    api = (api_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
    if not api.startswith(("http://", "https://")):
        raise MonitorError(f"GitHub API URL {api!r} is not http(s): fix {API_URL_ENV} / --api-url")
    repository = repository or os.environ.get(REPOSITORY_ENV) or ""
    if repository and not REPOSITORY.match(repository):
        raise MonitorError(
            f"repository {repository!r} is not owner/name: pass --repository owner/name "
            f"or set {REPOSITORY_ENV}"
        )
    if token and not repository:
        raise MonitorError(
            f"{TOKEN_ENV} is set but no repository is named: pass --repository owner/name "
            f"or set {REPOSITORY_ENV} (GitHub Actions sets it)"
        )
    return repository or "{owner}/{repo}", api


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


def dispatch_request(
    report: Any,
    window: dict[str, Any],
    event_type: str,
    repository: str,
    api_url: str,
    token: str | None,
    report_path: Path,
) -> Dispatch:
    """The repository_dispatch request for a drifted window (at most 10 payload keys)."""
    drifted = list(report.drifted_columns)
    statistics = report.to_dict()
    columns = {**statistics["features"], "prediction score": statistics.get("score")}
    payload = {
        "drifted": drifted,
        "summary": f"drift in {len(drifted)} of {len(report.results)} columns: "
        + ", ".join(drifted),
        "window": window,
        "reference_rows": statistics["reference_rows"],
        "current_rows": statistics["current_rows"],
        # Only the drifted columns' numbers: the full report is in the artifact.
        "statistics": {name: columns[name] for name in drifted if columns.get(name)},
        "report": report_path.as_posix(),
    }
    if len(payload) > MAX_PAYLOAD_KEYS:  # a payload change here must keep GitHub's limit
        raise RuntimeError(f"client_payload has {len(payload)} keys; GitHub takes at most 10")
    return Dispatch(
        url=f"{api_url}/repos/{repository}/dispatches",
        body={"event_type": event_type, "client_payload": payload},
        token=token,
    )


HINTS = {
    401: f"the token was refused: check {TOKEN_ENV} (expired or mistyped?)",
    403: "the token may not write to this repository: it needs Contents read and write "
    "(fine-grained or App token) or the repo scope (classic)",
    404: "no such repository for this token: check --repository / GITHUB_REPOSITORY and that "
    "the token can see it",
    422: "GitHub refused the request body (event_type over 100 characters, or more than 10 "
    "client_payload keys)",
}


def send(dispatch: Dispatch, timeout: float = 30) -> int:
    """POST the dispatch; GitHub answers 204 No Content when the event was created."""
    try:
        response = httpx.post(
            dispatch.url,
            headers=dispatch.headers(redact=False),
            content=json.dumps(dispatch.body),
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        raise MonitorError(f"could not reach {dispatch.url}: {error}") from None
    if response.status_code != 204:
        try:
            said = response.json().get("message", "")
        except ValueError:
            said = response.text[:200]
        hint = HINTS.get(response.status_code, "see https://docs.github.com/rest")
        raise MonitorError(
            f"GitHub answered {response.status_code} to POST {dispatch.url} ({said}); {hint}"
        )
    return response.status_code


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    _atomic(path, json.dumps(record, indent=2, default=str) + "\n")


def write_textfile(path: Path, record: Mapping[str, Any]) -> None:
    """Gauges for Prometheus' textfile collector (node_exporter --collector.textfile.directory).

    Written to a temporary file and renamed, so the collector never reads half a file.
    """
    drifted = record.get("drift", {}).get("drifted_columns", [])
    lines = [
        "# HELP model_drift_detected 1 when the last `monitor` run found drift, else 0",
        "# TYPE model_drift_detected gauge",
        f"model_drift_detected {int(record['status'] == 'drift')}",
        "# HELP model_drifted_columns Columns (and the score) that drifted in the last window",
        "# TYPE model_drifted_columns gauge",
        f"model_drifted_columns {len(drifted)}",
        "# HELP model_monitor_samples Prediction samples in the last monitored window",
        "# TYPE model_monitor_samples gauge",
        f"model_monitor_samples {record['window']['samples']}",
        "# HELP model_monitor_last_run_timestamp_seconds When `monitor` last finished",
        "# TYPE model_monitor_last_run_timestamp_seconds gauge",
        f"model_monitor_last_run_timestamp_seconds {time.time():.0f}",
    ]
    _atomic(path, "\n".join(lines) + "\n")


def _atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def monitor(
    settings: MonitoringSettings,
    drift_settings: Any,
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    *,
    now: datetime | None = None,
    repository: str | None = None,
    api_url: str | None = None,
    token: str | None = None,
    report_path: Path = MONITOR_RECORD,
    textfile: Path | None = MONITOR_TEXTFILE,
    reference_name: str = "",
) -> Outcome:
    """One monitoring run over the window ending ``now``; sends the dispatch when it drifts."""
    repository, api = target(repository, api_url, token)
    until = now or datetime.now(UTC)
    since = until - timedelta(hours=settings.window_hours)
    samples = read_window(settings.sink, since, until)
    features = list(contract_kinds())
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
    if len(samples) < drift_settings.min_rows:
        record |= {
            "status": "too_few_samples",
            "reason": f"{len(samples)} samples in the last {settings.window_hours:g} h; drift "
            f"needs {drift_settings.min_rows} (drift.min_rows)",
        }
        outcome = Outcome("too_few_samples", record)
    else:
        missing = [name for name in features if name not in samples.columns]
        if missing:
            raise MonitorError(
                f"samples in {settings.sink} lack contract columns {missing}: were they written "
                "by this project's service?"
            )
        report = judge(
            reference[features],
            samples[features],
            reference_scores,
            samples[SCORE].to_numpy(),
            drift_settings,
        )
        record |= {"status": "drift" if report.drifted else "no_drift", "drift": report.to_dict()}
        dispatch = None
        if report.drifted:
            dispatch = dispatch_request(
                report, window, settings.event_type, repository, api, token, report_path
            )
        outcome = Outcome(record["status"], record, dispatch)
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


def run(
    settings: Settings,
    choice: Choice,
    reference: Path = TRAIN_SPLIT,
    *,
    repository: str | None = None,
    api_url: str | None = None,
    report_path: Path = MONITOR_RECORD,
    textfile: Path | None = MONITOR_TEXTFILE,
) -> Outcome:
    """``make monitor``: score the training reference with the chosen model, then ``monitor``."""
    token = os.environ.get(TOKEN_ENV) or None
    target(repository, api_url, token)  # a bad repository fails before any work
    if not reference.exists():
        raise MonitorError(f"{reference} not found: run `make repro` (or pass --reference)")
    frame = read_table(reference)
    model, info = load(choice)
    scores = model.predict_proba(frame[list(contract_kinds())])[:, 1]
    return monitor(
        settings.monitoring,
        settings.drift,
        frame,
        scores,
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
    if outcome.dispatch is not None and outcome.sent:
        lines.append(f"sent {outcome.dispatch.body['event_type']} to {outcome.dispatch.url}")
    elif outcome.dispatch is not None:
        lines.append(f"{TOKEN_ENV} is not set: the request that would start retraining is:")
    return lines
