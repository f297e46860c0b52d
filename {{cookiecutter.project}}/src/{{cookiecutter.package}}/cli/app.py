"""One command line for DVC stages, the Makefile, workflows and people.

`python -m {{ cookiecutter.package }} --help` lists the commands by what they serve. Errors a user
can fix are printed as one `ERROR:` line with the fix, never as a stack trace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
# soft_wrap: a message is one line in CI logs and DVC output, never cut at 80 columns.
console = Console(stderr=True, soft_wrap=True)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        # ContractError is a ValueError: naming it would import pandera into every command.
        except (UserError, FileNotFoundError, ValueError) as error:
            # escape: messages quote user data, which may contain [brackets] rich would eat.
            console.print(f"[bold red]ERROR:[/] {escape(str(error))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyError as error:  # a column a module reads and the data no longer has
            from {{ cookiecutter.package }}.contract.validation import missing_column

            if (line := missing_column(error)) is None:
                raise
            console.print(f"[bold red]ERROR:[/] {escape(line)}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def fail(headline: str, problems: Iterable[Any]) -> NoReturn:
    """One ERROR line, then each problem's sentence, then exit 1."""
    console.print(f"[bold red]ERROR:[/] {escape(headline)}", highlight=False)
    for problem in problems:
        console.print(f"  - {problem.sentence()}", highlight=False, markup=False)
    raise typer.Exit(1)


# Options several commands take to choose a model (serving/choice.py).
ModelDir = Annotated[Path | None, typer.Option(help="a saved model directory, e.g. models/model")]
ModelVersion = Annotated[str | None, typer.Option(help="a registered MLflow model version")]
Alias = Annotated[
    str | None, typer.Option(help="an MLflow alias (default: champion, else challenger)")
]
