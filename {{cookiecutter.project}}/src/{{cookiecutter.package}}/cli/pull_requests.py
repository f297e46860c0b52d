"""The pull request's model report and quality gate (train.yml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.cli.app import UserError, app, console, friendly


@app.command(rich_help_panel="Pull requests")
@friendly
def report(
    base: Annotated[str, typer.Option(help="git ref to compare with, e.g. origin/main")] = "main",
    output: Annotated[Path, typer.Option(help="markdown file to write")] = config.REPORT,
    images: Annotated[
        str, typer.Option(help="embed: link the PNGs in place; link: point to the CI artifact")
    ] = "embed",
) -> None:
    """Model report vs a base git ref: metrics, params, plots, importance, data, training."""
    from {{ cookiecutter.package }}.lifecycle.report import ImageMode, build

    if images not in ImageMode.__members__:
        raise UserError(f"--images {images!r} is not one of {sorted(ImageMode.__members__)}")
    verdict = build(config.load_settings(), base, output, config.REPORT_ASSETS, ImageMode(images))
    console.print(f"wrote {output} (vs {base}); quality gate {verdict.line()}", highlight=False)


@app.command(rich_help_panel="Pull requests")
@friendly
def gate(
    base: Annotated[str, typer.Option(help="git ref to compare with, e.g. origin/main")] = "main",
) -> None:
    """Quality check: exit 1 when the primary metric regresses vs --base beyond params.yaml."""
    from {{ cookiecutter.package }}.lifecycle.gate import judge_file

    verdict = judge_file(config.load_settings(), base)
    if not verdict.passed:
        raise UserError(f"quality gate failed: {verdict.reason}")
    console.print(f"quality gate {verdict.line()} (vs {base})", highlight=False)
