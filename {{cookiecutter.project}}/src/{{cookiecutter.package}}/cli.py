"""One command line for DVC stages, the Makefile, workflows and people.

`{{ cookiecutter.package }} --help` lists the commands. Errors a user can fix are printed as one
`ERROR:` line with the fix, never as a stack trace.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from {{ cookiecutter.package }} import config

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console(stderr=True)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from {{ cookiecutter.package }}.schema import ContractError

        try:
            return command(*args, **kwargs)
        except (UserError, FileNotFoundError, ContractError, ValueError) as error:
            console.print(f"[bold red]ERROR:[/] {error}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


@app.command()
@friendly
def ingest() -> None:
    """Write the raw dataset named by data.source in params.yaml to data.raw."""
    from {{ cookiecutter.package }}.data import ingest as run_ingest

    raw = run_ingest(config.load_params())
    console.print(f"wrote {raw}; track it with `dvc add {raw}`")


@app.command()
@friendly
def prepare() -> None:
    """DVC stage: anonymise the raw data (hash or drop PII columns)."""
    from {{ cookiecutter.package }}.data import prepare as run_prepare

    frame = run_prepare(config.load_params(), config.ANONYMISED)
    console.print(f"prepared {len(frame)} rows -> {config.ANONYMISED}")


@app.command()
@friendly
def validate() -> None:
    """DVC stage: check the data contract; on success write the train/test split."""
    from {{ cookiecutter.package }}.validate import run

    result = run(
        config.load_params(),
        config.ANONYMISED,
        config.VALIDATION_REPORT,
        config.TRAIN_SPLIT,
        config.TEST_SPLIT,
    )
    if not result.valid:
        console.print(
            f"[bold red]ERROR:[/] data breaks the contract in schema.py "
            f"({len(result.problems)} problem(s)); training will not run. "
            f"Report: {config.VALIDATION_REPORT.with_suffix('.md')}",
            highlight=False,
        )
        for problem in result.problems:
            console.print(f"  - {problem.sentence()}", highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"contract holds for {result.rows} rows")


@app.command()
@friendly
def train() -> None:
    """DVC stage: fit the model family chosen in params.yaml."""
    from {{ cookiecutter.package }}.train import run

    run(config.load_params(), config.TRAIN_SPLIT, config.MODEL_DIR, config.TRAINING_INFO)
    console.print(f"model saved to {config.MODEL_DIR}")


@app.command()
@friendly
def evaluate() -> None:
    """DVC stage: holdout metrics (metrics.json) and plots."""
    from {{ cookiecutter.package }}.evaluate import run

    values = run(
        config.load_params(), config.MODEL_DIR, config.TEST_SPLIT, config.METRICS, config.PLOTS_DIR
    )
    console.print(" ".join(f"{name}={value:.4f}" for name, value in values.items()))


@app.command()
@friendly
def register() -> None:
    """DVC stage: log the run to MLflow and register the model under the challenger alias."""
    import json

    from {{ cookiecutter.package }}.registry import log_and_register

    params = config.load_params()
    metrics = json.loads(config.METRICS.read_text())
    result = log_and_register(
        params,
        metrics,
        config.MODEL_DIR,
        [config.PLOTS_DIR, config.VALIDATION_REPORT, config.TRAINING_INFO],
        config.REGISTRY_RECORD,
    )
    console.print(
        f"registered {result['model_name']} v{result['version']} as '{result['alias']}' "
        f"(run {result['run_id']})"
    )


@app.command("infer-schema")
@friendly
def infer_schema(
    source: Annotated[Path, typer.Argument(help="your .csv or .parquet file")],
    output: Annotated[Path, typer.Option(help="where to write the draft schema")] = Path(
        "schema_draft.yaml"
    ),
) -> None:
    """Draft a pandera schema (YAML) from your own data, to adapt into schema.py."""
    import pandera.pandas as pa

    from {{ cookiecutter.package }}.data import read_table

    if output.exists():
        raise UserError(f"{output} exists; pass --output with a new path (nothing overwritten)")
    frame = read_table(source)
    output.write_text(pa.infer_schema(frame).to_yaml())
    console.print(f"draft schema for {len(frame.columns)} columns -> {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
