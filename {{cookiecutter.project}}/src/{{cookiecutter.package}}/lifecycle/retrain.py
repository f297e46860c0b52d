"""The retraining run's summary: the pull request body `make retrain` and retrain.yml write.

It puts the decision first (promote or keep the champion, and why), then the challenger's and
the champion's metrics on the same holdout, then the data drift that started or accompanied the
run. It reads only files the earlier steps wrote, so any step can be rerun on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.modeling.metrics import metrics_table
from {{ cookiecutter.package }}.registry.champion import PROMOTION_RECORD

DRIFT_MARKDOWN = Path("reports/drift.md")
RETRAIN_BODY = Path("reports/retrain.md")


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


def drift_section() -> list[str]:
    if not DRIFT_MARKDOWN.exists():
        return ["## Data drift", "", f"No {DRIFT_MARKDOWN}: the drift step did not run.", ""]
    return [DRIFT_MARKDOWN.read_text().rstrip(), ""]


def write(settings: Settings, path: Path = RETRAIN_BODY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body(settings))
    return path
