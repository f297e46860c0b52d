"""Columns, records, broken values and shifted data, all read from the contract (schema.py).

Tests pick "a whole-number column", "a nullable one" or "one with allowed values" here instead of
naming columns of the example data, so they hold for whatever contract `adopt` writes. A test
that needs a kind of column the contract does not have is skipped, saying which.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package }}.contract.records import column_kind
from {{ cookiecutter.package }}.contract.schema import ModelInput

SCHEMA = ModelInput.to_schema()
FIELDS = list(SCHEMA.columns)


def checks(name: str) -> dict[str, dict]:
    """pandera's checks of a column: name -> statistics (min_value, allowed_values, ...)."""
    return {check.name: check.statistics for check in SCHEMA.columns[name].checks}


def kind(name: str) -> str:
    """``int``, ``float`` or ``str``: the JSON kind of a contract column."""
    return column_kind(SCHEMA.columns[name])


def columns(
    *, kinds: set[str] | None = None, nullable: bool | None = None, check: str = ""
) -> list[str]:
    """Contract columns of the given kinds, nullability and check (``isin``, ``range``)."""
    found = []
    for name in FIELDS:
        stats = checks(name)
        if kinds is not None and kind(name) not in kinds:
            continue
        if nullable is not None and SCHEMA.columns[name].nullable != nullable:
            continue
        if check == "range" and not {"greater_than_or_equal_to", "less_than_or_equal_to"} & set(
            stats
        ):
            continue
        if check == "isin" and "isin" not in stats:
            continue
        found.append(name)
    return found


def column(**where: Any) -> str:
    """The first contract column that matches ``where`` (see ``columns``); skips the test when
    the contract has none."""
    found = columns(**where)
    if not found:
        pytest.skip(f"the contract has no column with {where}")
    return found[0]


def as_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client sends them: Python numbers and text, null for a missing value."""
    records = frame[FIELDS].astype(object).to_dict("records")
    return [{k: None if v != v else v for k, v in r.items()} for r in records]  # NaN != NaN


def wrong_type(name: str) -> Any:
    """A JSON value of a type the column does not take: text for a number, a number for text."""
    return "72" if kind(name) in {"int", "float"} else 72


def breaking_value(name: str) -> Any:
    """A value of the right type that breaks one of the column's value checks, else None."""
    stats = checks(name)
    if "isin" in stats:
        allowed = stats["isin"]["allowed_values"]
        return "not-a-category" if kind(name) == "str" else max(allowed) + 1
    if (low := stats.get("greater_than_or_equal_to", {}).get("min_value")) is not None:
        return float(low) - 1 if kind(name) == "float" else int(low) - 1
    if (high := stats.get("less_than_or_equal_to", {}).get("max_value")) is not None:
        return float(high) + 1 if kind(name) == "float" else int(high) + 1
    return None


def shifted(
    frame: pd.DataFrame, reference: pd.DataFrame, seed: int = 0
) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with every contract column moved as far as the contract allows, and the columns
    that moved by half a standard deviation or more (the ones drift must name).

    A number takes values drawn from the top quarter of ``reference``'s; text with allowed values
    takes its rarest value in ``reference``. Values come from ``reference``, so the shifted rows
    still keep the contract; missing values stay where they were.
    """
    rng = np.random.default_rng(seed)
    moved, names = frame.copy(), []
    for name in FIELDS:
        before = reference[name].dropna()
        present = moved[name].notna().to_numpy()
        if before.empty or not present.any():
            continue
        if kind(name) == "str":
            if "isin" not in checks(name):
                continue
            rare = before.value_counts().index[-1]
            moved.loc[present, name] = rare
            change = abs((moved[name] == rare).mean() - (reference[name] == rare).mean())
        else:
            top = np.sort(before.to_numpy())[int(len(before) * 0.75) :]
            moved.loc[present, name] = rng.choice(top, int(present.sum()))
            spread = float(before.std()) or 1.0
            change = abs(float(moved[name].mean()) - float(before.mean())) / spread
        if change >= 0.5:
            names.append(name)
    if not names:
        pytest.skip("no contract column can be shifted far enough to test drift")
    return moved.astype(frame.dtypes.to_dict()), names
