"""The command line: `app` with its commands, grouped by what they serve (one module each)."""

from __future__ import annotations

import sys

from {{ cookiecutter.package }}.cli.app import app

# Importing a module registers its commands, in the order `--help` shows its panels.
# isort: off
from {{ cookiecutter.package }}.cli import pipeline, pull_requests, serving  # noqa: F401
from {{ cookiecutter.package }}.cli import training, monitoring, deploys  # noqa: F401
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
