"""Stage ``prepare``: anonymise the raw data before anything else sees it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from {{ cookiecutter.package }}.config import DataSettings
from {{ cookiecutter.package }}.data import anonymise, read_table, write_table


def run(settings: DataSettings, output: Path) -> pd.DataFrame:
    """Read the raw file, hash or drop its PII columns, and write the result to ``output``."""
    frame = read_table(Path(settings.raw))
    anonymised = anonymise(frame, settings.pii.hash, settings.pii.drop)
    write_table(anonymised, output)
    return anonymised
