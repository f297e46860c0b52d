"""The retraining run's summary: the pull request body `make retrain` and retrain.yml write.

It puts the decision first (promote or keep the champion, and why), then the challenger's and
the champion's metrics on the same holdout, then the data drift that started or accompanied the
run. It reads only files the earlier steps wrote, so any step can be rerun on its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.config import DRIFT_MARKDOWN, PROMOTION_RECORD, RETRAIN_BODY, Settings
from {{ cookiecutter.package }}.modeling.metrics import metrics_table


def body(settings: Settings) -> str:
    """The markdown body; a missing input is named, never skipped silently."""
    if not PROMOTION_RECORD.exists():
        raise FileNotFoundError(f"{PROMOTION_RECORD} not found: run `make promote` first")
    record = json.loads(PROMOTION_RECORD.read_text())
    challenge = record.get("evidence", {})
    decision = challenge.get("decision", {})
    promoted = record.get("promoted", False)
    wins = decision.get("promote", False)
    title = (
        "promoted to champion"
        if promoted
        else "wins: promote it by merging"
        if wins
        else "keeps the champion"
    )
    version = challenge.get("challenger_version", "?")
    lines = [
        f"# Retraining: {settings.registry.model_name} v{version} {title}",
        "",
        f"**{'✅' if wins else '⏸️'} {decision.get('reason', record.get('reason', ''))}**",
        "",
        *metrics_section(settings, challenge),
        *drift_section(),
        f"Run: {record.get('workflow_run', '-')}.",
    ]
    return "\n".join(lines).rstrip() + "\n"


def metrics_section(settings: Settings, challenge: dict[str, Any]) -> list[str]:
    challenger = challenge.get("challenger", {})
    champion = challenge.get("champion") or {}
    against = challenge.get("champion_scored") or champion.get("metrics") or {}
    name = champion.get("where", "no champion yet")
    lines = [
        "## Challenger vs champion (same holdout)",
        "",
        f"Champion: {name}. {challenge.get('basis', '')}.",
        "",
    ]
    primary = settings.evaluate.primary_metric
    return [*lines, *metrics_table(challenger, against, primary, ("champion", "challenger"))]


def drift_section(expected: bool = True) -> list[str]:
    """The data drift section `make drift-report` wrote; when it is missing, a line saying so
    where it was ``expected`` (a retraining run), nothing otherwise (a pull request)."""
    if DRIFT_MARKDOWN.exists():
        return [DRIFT_MARKDOWN.read_text().rstrip(), ""]
    if not expected:
        return []
    return ["## Data drift", "", f"No {DRIFT_MARKDOWN}: the drift step did not run.", ""]


def write(settings: Settings, path: Path = RETRAIN_BODY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body(settings))
    return path


def publish(settings: Settings, path: Path = RETRAIN_BODY) -> Path:
    """Write the body; in GitHub Actions also as the run's summary, and whether the challenger
    wins (step output ``wins``: retrain.yml opens a pull request only then)."""
    write(settings, path)
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(summary, "a") as handle:
            handle.write(path.read_text())
    if output := os.environ.get("GITHUB_OUTPUT"):
        wins = json.loads(PROMOTION_RECORD.read_text())["evidence"]["decision"]["promote"]
        with open(output, "a") as handle:
            handle.write(f"wins={str(wins).lower()}\n")
    return path
