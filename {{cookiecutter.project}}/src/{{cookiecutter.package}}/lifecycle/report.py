"""The model report for a pull request: this work tree compared with a base git ref.

Everything "now" comes from the pipeline outputs in the work tree (after `make repro`);
everything "base" comes from the same files committed at the base ref (`git show`), so no
second training run and no DVC remote are needed. The quality gate's verdict goes on top.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.config import Settings, flatten
from {{ cookiecutter.package }}.lifecycle.gate import Verdict, baseline, check
from {{ cookiecutter.package }}.lifecycle.retrain import drift_section
from {{ cookiecutter.package }}.modeling.metrics import metrics_table
from {{ cookiecutter.package }}.modeling.plots import PLOT_FILES, render_overlay, render_pngs
from {{ cookiecutter.package }}.registry.history import describe_head, resolve, show

PLOT_TITLES = {"roc": "ROC", "precision_recall": "Precision-recall", "confusion": "Confusion"}
ARTIFACT_NAME = "model-report"


class ImageMode(StrEnum):
    """How report.md shows plots: inline PNG links, or a pointer to the CI run's artifact."""

    embed = "embed"
    link = "link"


@dataclass
class Snapshot:
    """The pipeline's outputs at one point in history (any may be missing)."""

    label: str
    metrics: dict[str, float] | None = None
    params: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    registry: dict[str, Any] | None = None
    importance: dict[str, Any] | None = None
    plots: dict[str, str] = field(default_factory=dict)  # file name -> CSV text


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def now_snapshot() -> Snapshot:
    def read(path: Path) -> str | None:
        return path.read_text() if path.exists() else None

    return Snapshot(
        label="this change",
        metrics=_json(read(config.METRICS_FILE)),
        params=yaml.safe_load(read(config.PARAMS_FILE) or "null"),
        validation=_json(read(config.VALIDATION_REPORT)),
        training=_json(read(config.TRAINING_INFO)),
        registry=_json(read(config.REGISTRY_RECORD)),
        importance=_json(read(config.IMPORTANCE)),
        plots={
            name: text for name in PLOT_FILES if (text := read(config.PLOTS_DIR / name)) is not None
        },
    )


def base_snapshot(commit: str, ref: str) -> Snapshot:
    return Snapshot(
        label=ref,
        metrics=_json(show(commit, config.METRICS_FILE)),
        params=yaml.safe_load(show(commit, config.PARAMS_FILE) or "null"),
        validation=_json(show(commit, config.VALIDATION_REPORT)),
        training=_json(show(commit, config.TRAINING_INFO)),
        registry=_json(show(commit, config.REGISTRY_RECORD)),
        importance=_json(show(commit, config.IMPORTANCE)),
        plots={
            name: text
            for name in PLOT_FILES
            if (text := show(commit, config.PLOTS_DIR / name)) is not None
        },
    )


def params_diff(before: dict | None, after: dict | None) -> list[tuple[str, Any, Any]]:
    """(key, base value, new value) for every parameter that differs; missing is None."""
    old, new = flatten(before or {}), flatten(after or {})
    return [
        (key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def metrics_section(now: Snapshot, base: Snapshot, primary: str) -> list[str]:
    lines = ["## Metrics (holdout)", ""]
    if not now.metrics:
        return [*lines, "No metrics.json: the pipeline did not finish (`make repro`).", ""]
    lines += metrics_table(now.metrics, base.metrics, primary, (base.label, now.label))
    if not base.metrics:
        lines += [f"No metrics.json at {base.label}: nothing to compare with yet.", ""]
    return lines


def params_section(now: Snapshot, base: Snapshot) -> list[str]:
    changes = params_diff(base.params, now.params)
    lines = ["## Parameters changed", ""]
    if not changes:
        return [*lines, "No parameter in params.yaml changed.", ""]
    lines += [f"| parameter | {base.label} | {now.label} |", "|---|---|---|"]
    lines += [f"| `{key}` | {old!r} | {new!r} |" for key, old, new in changes]
    return [*lines, ""]


def render_plots(snapshot: Snapshot, directory: Path) -> dict[str, Path]:
    """Write the snapshot's plot CSVs into ``directory`` and render them as PNGs."""
    if set(snapshot.plots) != set(PLOT_FILES):
        return {}
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name, text in snapshot.plots.items():
        (directory / name).write_text(text)
    return {png.stem: png for png in render_pngs(directory, title=f"({snapshot.label})")}


def overlay(now: Snapshot, base: Snapshot, path: Path) -> Path | None:
    """ROC and precision-recall of both sides on shared axes: the change at a glance."""
    if set(now.plots) != set(PLOT_FILES):
        return None
    return render_overlay({base.label: base.plots, now.label: now.plots}, path)


def run_url() -> str | None:
    """This CI run's page (GitHub sets these variables in every job)."""
    parts = [os.environ.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY")]
    run = os.environ.get("GITHUB_RUN_ID")
    return f"{parts[0]}/{parts[1]}/actions/runs/{run}" if all(parts) and run else None


def plots_section(
    now: dict[str, Path],
    base: dict[str, Path],
    labels: tuple[str, str],
    out: Path,
    mode: ImageMode,
    overlay: Path | None = None,
) -> list[str]:
    lines = ["## Plots", ""]
    if not now:
        return [*lines, "No plot data in reports/plots: the evaluate stage did not run.", ""]
    if mode is ImageMode.link:
        url = run_url()
        where = f"[this workflow run]({url})" if url else "this workflow run"
        names = ", ".join(PLOT_TITLES.values())
        return [
            *lines,
            f"{names} plots for {labels[1]}{' and ' + labels[0] if base else ''} are in the "
            f"`{ARTIFACT_NAME}` artifact of {where} (kept inside GitHub).",
            "",
        ]

    def image(path: Path | None, title: str) -> str:
        if path is None:
            return "-"
        return f"![{title}]({os.path.relpath(path, out.parent)})"

    if overlay is not None:
        lines += [image(overlay, "ROC and precision-recall, base dashed"), ""]
    lines += [f"| | {labels[0]} | {labels[1]} |", "|---|---|---|"]
    for stem, title in PLOT_TITLES.items():
        lines.append(f"| {title} | {image(base.get(stem), title)} | {image(now[stem], title)} |")
    return [*lines, ""]


def importance_section(now: Snapshot, base: Snapshot, top: int) -> list[str]:
    lines = ["## Feature importance", ""]
    if not now.importance:
        return [*lines, f"No {config.IMPORTANCE}: the explain stage did not run.", ""]
    metric = now.importance["metric"]
    features = now.importance["features"]
    before = (base.importance or {}).get("features", {})
    base_rank = {name: rank for rank, name in enumerate(before, start=1)}
    lines += [
        f"Permutation importance on the holdout: how much {metric} worsens when the column is "
        f"shuffled (top {top}, mean ± std over {now.importance['repeats']} shuffles).",
        "",
        f"| rank | feature | {now.label} | {base.label} (rank) |",
        "|--:|---|--:|--:|",
    ]
    for rank, (name, value) in enumerate(list(features.items())[:top], start=1):
        old = before.get(name)
        then = f"{old['mean']:.4f} ({base_rank[name]})" if old else "-"
        lines.append(f"| {rank} | {name} | {value['mean']:.4f} ± {value['std']:.4f} | {then} |")
    return [*lines, ""]


def validation_section(now: Snapshot) -> list[str]:
    lines = ["## Data validation", ""]
    report = now.validation
    if not report:
        return [*lines, f"No {config.VALIDATION_REPORT}: the validate stage did not run.", ""]
    if report["valid"]:
        return [
            *lines,
            f"✅ The data keeps the contract (schema.py): {report['rows']} rows, "
            f"{len(report['columns'])} columns.",
            "",
        ]
    lines += [
        f"❌ {len(report['problems'])} contract problem(s) in {report['rows']} rows:",
        "",
        "| column | check | expected | received |",
        "|---|---|---|---|",
    ]
    for problem in report["problems"][:20]:
        lines.append(
            f"| {problem.get('column')} | {problem.get('check')} | {problem.get('expected')} "
            f"| {problem.get('received')} |"
        )
    return [*lines, ""]


def training_section(now: Snapshot, base: Snapshot) -> list[str]:
    lines = ["## Training", ""]
    if not now.training:
        return [*lines, f"No {config.TRAINING_INFO}: the train stage did not run.", ""]
    old = base.training or {}
    lines += [f"| | {base.label} | {now.label} |", "|---|---|---|"]
    # device to precision: how a torch model trained (captured or eager, and why). A key that
    # neither side has (sklearn) gets no row.
    keys = ["family", "rows", "seconds", "hardware", "device", "path", "path_reason", "precision"]
    for key in [key for key in [*keys, "python"] if key in now.training or key in old]:
        lines.append(f"| {key} | {old.get(key, '-')} | {now.training.get(key, '-')} |")
    return [*lines, ""]


def registry_section(now: Snapshot) -> list[str]:
    lines = ["## MLflow", ""]
    record = now.registry
    if not record:
        return [*lines, f"No {config.REGISTRY_RECORD}: the register stage did not run.", ""]
    return [
        *lines,
        f"Run `{record['run_id']}`; model `{record['model_name']}` version {record['version']} "
        f"(alias `{record['alias']}`), tracking `{record['tracking_uri']}`.",
        "",
    ]


def gate_banner(verdict: Verdict) -> list[str]:
    if verdict.passed:
        return [f"**✅ Quality gate passed**: {verdict.reason}.", ""]
    return [f"**❌ Quality gate FAILED**: {verdict.reason}.", ""]


def build(
    settings: Settings,
    base_ref: str,
    out: Path,
    assets: Path,
    mode: ImageMode = ImageMode.embed,
) -> Verdict:
    """Write the report to ``out`` (plots under ``assets``) and return the gate's verdict."""
    commit = resolve(base_ref)
    now, base = now_snapshot(), base_snapshot(commit, base_ref)
    if now.metrics is None:
        raise FileNotFoundError(f"{config.METRICS_FILE} not found: run `make repro` first")
    verdict = check(settings, now.metrics, *baseline(settings, base_ref))
    now_plots = render_plots(now, assets / "now")
    base_plots = render_plots(base, assets / "base")
    compared = overlay(now, base, assets / "compare.png")
    lines = [
        f"# Model report: {settings.registry.model_name}",
        "",
        *gate_banner(verdict),
        f"Compared with `{base_ref}` ({commit[:8]}); this change: {describe_head()}.",
        "",
        *metrics_section(now, base, verdict.metric),
        *params_section(now, base),
        *plots_section(now_plots, base_plots, (base.label, now.label), out, mode, compared),
        *importance_section(now, base, settings.explain.top),
        *validation_section(now),
        *drift_section(expected=False),
        *training_section(now, base),
        *registry_section(now),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
    return verdict
