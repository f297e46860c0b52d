"""Monitoring: samples vs training data, labels, alert rules."""

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
    fail,
    friendly,
)


@app.command(rich_help_panel="Monitoring")
@friendly
def monitor(
    repository: Annotated[
        str | None, typer.Option(help="owner/name to dispatch to (default: GITHUB_REPOSITORY)")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="GitHub API base (default: GITHUB_API_URL, else github.com)")
    ] = None,
    reference: Annotated[
        str, typer.Option(help="training reference: the validated split (a path or fsspec URL)")
    ] = str(config.TRAIN_SPLIT),
    output: Annotated[Path, typer.Option(help="the run's record")] = config.MONITOR_RECORD,
    textfile: Annotated[
        Path, typer.Option(help="gauges for Prometheus' textfile collector")
    ] = config.MONITOR_TEXTFILE,
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
) -> None:
    """Recent samples vs training data, and labelled quality; ask GitHub to retrain when needed.

    Exit 0: nothing to retrain for (or too few samples); 3: drift, a prediction shift or a
    quality drop (retrain.yml started); 1: a problem to fix. Without GITHUB_TOKEN the
    workflow_dispatch request is printed, not sent.
    """
    from {{ cookiecutter.package }}.monitoring import monitor as watch
    from {{ cookiecutter.package }}.serving.choice import choose

    outcome = watch.run(
        config.load_settings(),
        choose(model_dir, model_version, alias),
        reference,
        repository=repository,
        api_url=api_url,
        report_path=output,
        textfile=textfile,
    )
    for line in watch.summary(outcome, output):
        console.print(line, highlight=False)
    if outcome.dispatch is not None and not outcome.sent:
        print(outcome.dispatch.describe())
    raise typer.Exit(outcome.exit_code)


@app.command(rich_help_panel="Monitoring")
@friendly
def feedback(
    labels: Annotated[
        Path | None,
        typer.Option(help="labels file (.csv/.parquet): request_id, the target, observed_at"),
    ] = None,
    inbox: Annotated[
        Path | None, typer.Option(help="drain this folder (default: params.yaml monitoring.inbox)")
    ] = None,
) -> None:
    """Join true outcomes to the predictions they judge, then model quality over time.

    Each problem of a labels file is named and nothing is written; without --labels every file
    in the inbox is fed (bad ones set aside in rejected/). Exit 1 when a file was refused.
    """
    from {{ cookiecutter.package }}.monitoring import feedback as fed
    from {{ cookiecutter.package }}.monitoring import quality

    settings = config.load_settings()
    try:
        lines, refused = fed.run(settings, labels, inbox, config.FEEDBACK_RECORD)
    except fed.LabelsError as error:
        fail(str(error), error.problems)
    for line in [*lines, quality.summary(quality.refresh(settings))]:
        console.print(line, highlight=False, markup=False)
    if refused:
        raise typer.Exit(1)


@app.command("monitoring-rules", rich_help_panel="Monitoring")
@friendly
def monitoring_rules(
    check: Annotated[
        bool, typer.Option(help="only check that the committed files equal the rendering")
    ] = False,
) -> None:
    """Render the alert rules (with promtool tests) and the monitor's schedule from params.yaml."""
    from {{ cookiecutter.package }}.monitoring.alerts import write_rules

    written = write_rules(config.load_settings(), check)
    message = "alert rules match params.yaml" if check else f"wrote {', '.join(map(str, written))}"
    console.print(f"{message} (params.yaml monitoring)", highlight=False)
