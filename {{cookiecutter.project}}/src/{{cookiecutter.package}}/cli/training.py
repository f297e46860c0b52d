"""Continuous training: champion/challenger, the retraining report, drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.cli.app import (
    Alias,
    ModelDir,
    ModelVersion,
    app,
    console,
    friendly,
)


@app.command(rich_help_panel="Continuous training")
@friendly
def promote(
    decide_only: Annotated[
        bool, typer.Option(help="write the decision to reports/promotion.json; move nothing")
    ] = False,
    approved_by: Annotated[
        str, typer.Option(help="who or what approves: retrain, canary, or a person's name")
    ] = "make promote",
) -> None:
    """Champion/challenger: both on the same holdout; the challenger wins or the champion stays."""
    from {{ cookiecutter.package }}.registry.champion import decide_and_promote
    from {{ cookiecutter.package }}.registry.tracking import registered_version

    version = registered_version(config.REGISTRY_RECORD)
    for line in decide_and_promote(
        config.load_settings(),
        version,
        config.MODEL_DIR,
        config.TEST_SPLIT,
        approved_by=approved_by,
        decide_only=decide_only,
    ):
        console.print(line, highlight=False, markup=False)


@app.command("retrain-report", rich_help_panel="Continuous training")
@friendly
def retrain_report() -> None:
    """The retraining pull request's body (decision, metrics vs champion, drift)."""
    from {{ cookiecutter.package }}.lifecycle.retrain import publish

    path = publish(config.load_settings())
    console.print(f"pull request body -> {path}", highlight=False)


@app.command(rich_help_panel="Continuous training")
@friendly
def drift(
    current: Annotated[Path, typer.Option(help="the sample to compare with it: .csv/.parquet")],
    reference: Annotated[
        Path, typer.Option(help="the sample the model learnt from: .csv/.parquet")
    ] = config.TRAIN_SPLIT,
    output: Annotated[
        Path, typer.Option(help="drift.json; the markdown section goes next to it as .md")
    ] = config.DRIFT_REPORT,
    scores: Annotated[
        bool, typer.Option(help="also compare the chosen model's scores of both samples")
    ] = False,
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
) -> None:
    """Per-column drift of CURRENT against REFERENCE (params.yaml drift); exit 3 on drift.

    Exit code 0: no drift; 3: drift; 1: an error.
    """
    from {{ cookiecutter.package }}.monitoring.compare import compare_files, summary
    from {{ cookiecutter.package }}.monitoring.monitor import DRIFT_EXIT_CODE
    from {{ cookiecutter.package }}.serving.choice import choose

    choice = choose(model_dir, model_version, alias) if scores else None
    report = compare_files(config.load_settings(), current, reference, output, choice)
    console.print(summary(report, output), highlight=False, markup=False)
    if report.drifted:
        raise typer.Exit(DRIFT_EXIT_CODE)
