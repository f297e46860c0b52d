"""Batch predictions and the model BentoML serves."""

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


@app.command(rich_help_panel="Serving")
@friendly
def predict(
    input: Annotated[Path, typer.Option("--input", "-i", help="records: .csv or .parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="predictions: .csv or .parquet")],
    rejected: Annotated[
        Path | None, typer.Option(help="rows that break the contract, with reasons")
    ] = None,
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows read at a time")] = 100_000,
) -> None:
    """Batch predictions for a file; rows that break the contract go to a separate file."""
    from {{ cookiecutter.package }}.serving.batch import predict_file
    from {{ cookiecutter.package }}.serving.choice import choose, load

    model, info = load(choose(model_dir, model_version, alias))
    result = predict_file(model, info.threshold, input, output, rejected, chunk_rows)
    console.print(
        f"{result.predicted} of {result.rows} rows predicted -> {result.output} "
        f"(model {info.name} v{info.version}); {result.rejected} rejected -> "
        f"{result.rejected_file}",
        highlight=False,
    )


@app.command("prepare-bento", rich_help_panel="Serving")
@friendly
def prepare_bento(
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
    release: Annotated[
        bool, typer.Option("--release", help="name the model as the release record does")
    ] = False,
) -> None:
    """Put the chosen model into BentoML's model store for `bentoml build` (`make build`)."""
    from {{ cookiecutter.package }}.registry.release import load
    from {{ cookiecutter.package }}.serving.bento import prepare
    from {{ cookiecutter.package }}.serving.choice import choose

    tag, info = prepare(choose(model_dir, model_version, alias), load() if release else None)
    console.print(
        f"BentoML model {tag} <- {info.name} v{info.version} ({info.source}"
        f"{', alias ' + info.alias if info.alias else ''}); bentofile -> {config.BUILD_BENTOFILE}",
        highlight=False,
    )
