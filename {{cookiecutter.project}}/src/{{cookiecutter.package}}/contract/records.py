"""Fast contract checks for online records and batch chunks, compiled from schema.py.

pandera validates a DataFrame in about 60 ms per call, almost all of it fixed overhead, which is
more than a whole single-row prediction. So this module reads the pandera schema once (dtype,
nullability, checks) and compiles it into plain-Python checks for JSON records and vectorised
checks for file chunks. Nothing is written twice: add a column or a check to schema.py and both
paths follow. tests/test_records.py proves that they agree with pandera.

JSON has one number type, so a float field accepts a JSON integer (JavaScript writes 70.0 as
70); an integer field still rejects 3.5, "3" and true, as pandera does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from {{ cookiecutter.package }}.contract.schema import ModelInput
from {{ cookiecutter.package }}.contract.validation import Problem

KINDS = {"int": "a whole number", "float": "a number", "str": "text"}


@dataclass(frozen=True)
class Rule:
    """One value check of a column: pandera's name for it, and what it wants in words."""

    check: str
    expected: str
    scalar: Callable[[Any], bool]
    vector: Callable[[pd.Series], np.ndarray]


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # int | float | str: the JSON type the dtype asks for
    dtype: str  # pandera's dtype, used for the DataFrame handed to the model
    nullable: bool
    rules: tuple[Rule, ...]

    @property
    def expected_type(self) -> str:
        dtype = "str" if self.kind == "str" else self.dtype  # not "string[pyarrow]"
        return f"{dtype} ({KINDS[self.kind]})"


def column_kind(column: pa.Column) -> str:
    """``int``, ``float`` or ``str``: the JSON kind of a contract column."""
    dtype = str(column.dtype).lower()
    if "int" in dtype:
        return "int"
    if "float" in dtype:
        return "float"
    if "str" in dtype:
        return "str"
    raise TypeError(
        f"records.py cannot compile column {column.name!r} of dtype {dtype}: "
        "extend column_kind() for it (int, float and str columns are supported)"
    )


def _bound(op: str, limit: float) -> tuple[Callable[[Any], bool], Callable[[pd.Series], Any]]:
    # Functions of the value only, so the same rule serves one record and a whole column.
    if op == ">=":
        return (lambda v: v >= limit), (lambda s: s >= limit)
    if op == ">":
        return (lambda v: v > limit), (lambda s: s > limit)
    if op == "<=":
        return (lambda v: v <= limit), (lambda s: s <= limit)
    return (lambda v: v < limit), (lambda s: s < limit)


def _rule(check: pa.Check) -> Rule:
    stats = check.statistics or {}
    name = str(check.error or check.name)
    bounds = {
        "greater_than_or_equal_to": (">=", "min_value"),
        "greater_than": (">", "min_value"),
        "less_than_or_equal_to": ("<=", "max_value"),
        "less_than": ("<", "max_value"),
    }
    if check.name in bounds:
        op, key = bounds[check.name]
        scalar, vector = _bound(op, stats[key])
        return Rule(name, f"{op} {stats[key]}", scalar, lambda s: np.asarray(vector(s), bool))
    if check.name == "in_range":
        low, high = stats["min_value"], stats["max_value"]
        low_ok, low_vec = _bound(">=" if stats.get("include_min", True) else ">", low)
        high_ok, high_vec = _bound("<=" if stats.get("include_max", True) else "<", high)
        return Rule(
            name,
            f"between {low} and {high}",
            lambda v: low_ok(v) and high_ok(v),
            lambda s: np.asarray(low_vec(s) & high_vec(s), bool),
        )
    if check.name in {"isin", "notin"}:
        values = list(stats["allowed_values" if check.name == "isin" else "forbidden_values"])
        allowed = frozenset(values)
        if check.name == "isin":
            return Rule(
                name,
                f"one of {values}",
                lambda v: v in allowed,
                lambda s: np.asarray(s.isin(values), bool),
            )
        return Rule(
            name,
            f"none of {values}",
            lambda v: v not in allowed,
            lambda s: ~np.asarray(s.isin(values), bool),
        )

    # Any other check (str_length, a custom one) runs through pandera itself: slower, never wrong.
    def through_pandera(series: pd.Series) -> np.ndarray:
        output = check(series).check_output
        return np.asarray(output, bool) if output is not None else np.ones(len(series), bool)

    return Rule(name, name, lambda v: bool(through_pandera(pd.Series([v]))[0]), through_pandera)


def _is_null(value: Any) -> bool:
    return value is None or (type(value) is float and math.isnan(value))


def _has_kind(value: Any, kind: str) -> bool:
    # `type(...) is` on purpose: bool is a subclass of int, and True is not a count.
    if kind == "str":
        return type(value) is str
    if kind == "int":
        return type(value) is int
    return type(value) is float or type(value) is int


def shown(value: Any, limit: int = 60) -> str:
    """A value as the sender wrote it, with its JSON type, kept short for error messages."""
    names = {dict: "object", list: "array", type(None): "null"}
    # A cell read from a file is a numpy scalar: show its value, not ``np.int64(-4)``.
    text = repr(value.item() if isinstance(value, np.generic) else value)
    text = text if len(text) <= limit else f"{text[: limit - 3]}..."
    return f"{text} ({names.get(type(value), type(value).__name__)})"


class Contract:
    """The pandera schema compiled for speed: check one JSON record or a whole chunk."""

    def __init__(self, schema: pa.DataFrameSchema) -> None:
        self.fields = tuple(
            Field(
                name,
                column_kind(column),
                str(column.dtype),
                bool(column.nullable),
                tuple(_rule(check) for check in column.checks),
            )
            for name, column in schema.columns.items()
        )
        self.names = [field.name for field in self.fields]
        self._known = frozenset(self.names)

    def describe(self) -> dict[str, str]:
        """Field name -> expected type, for error bodies and docs."""
        return {field.name: field.expected_type for field in self.fields}

    # --- one JSON record -------------------------------------------------------------------

    def check_record(self, record: Any, row: int | None = None) -> list[Problem]:
        """Every way ``record`` breaks the contract; an empty list means it keeps it."""
        rows = [] if row is None else [row]
        if not isinstance(record, Mapping):
            return [
                Problem(
                    "(record)",
                    "dtype",
                    f"a JSON object with fields {self.names}",
                    shown(record),
                    rows,
                )
            ]
        problems: list[Problem] = []
        for field in self.fields:
            if field.name not in record:
                problems.append(
                    Problem(field.name, "missing column", field.expected_type, "nothing", rows)
                )
                continue
            value = record[field.name]
            if _is_null(value):
                if not field.nullable:
                    problems.append(Problem(field.name, "not_nullable", "a value", "null", rows))
                continue
            if not _has_kind(value, field.kind):
                problems.append(
                    Problem(field.name, "dtype", field.expected_type, shown(value), rows)
                )
                continue
            for rule in field.rules:
                if not rule.scalar(value):
                    problems.append(
                        Problem(field.name, rule.check, rule.expected, repr(value), rows)
                    )
        if len(record) > len(self.fields) or not self._known.issuperset(record):
            problems.extend(
                Problem(str(name), "extra column", "no such field", shown(record[name]), rows)
                for name in record
                if name not in self._known
            )
        return problems

    def check_records(self, records: Sequence[Any]) -> list[Problem]:
        """Problems of many records, each naming its row (0-based position in the request)."""
        return [p for row, record in enumerate(records) for p in self.check_record(record, row)]

    def to_frame(self, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Contract-valid records as the typed DataFrame the model expects (no pandas inference)."""
        columns: dict[str, Any] = {}
        for field in self.fields:
            values = [record[field.name] for record in records]
            if field.kind == "str":
                columns[field.name] = pd.array(values, dtype=field.dtype)
            else:
                # None becomes NaN in a float column; nullable ints are not part of the contract.
                columns[field.name] = np.array(
                    [np.nan if v is None else v for v in values] if field.nullable else values,
                    dtype=field.dtype,
                )
        return pd.DataFrame(columns, copy=False)

    # --- a chunk of a file -----------------------------------------------------------------

    def check_frame(self, frame: pd.DataFrame) -> FrameCheck:
        """Row-level verdicts for a chunk read from CSV or Parquet.

        Files carry types per column, not per value: one empty cell turns a CSV integer
        column into floats, one stray word turns it into text. So each cell is judged on its
        own; whole numbers read as floats count as integers, and only the broken rows fail.
        Columns outside the contract are not judged here: batch passes them through.
        """
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise KeyError(missing)
        size = len(frame)
        reasons: dict[int, list[str]] = {}  # only broken rows: most chunks have few or none
        bad = np.zeros(size, bool)
        clean: dict[str, Any] = {}
        for field in self.fields:
            series = frame[field.name].reset_index(drop=True)
            values, wrong_type, null = _typed(series, field.kind)
            failures: list[tuple[np.ndarray, str, str]] = []
            if not field.nullable:
                failures.append((null, "not_nullable", "a value"))
            failures.append((wrong_type, "dtype", field.expected_type))
            checkable = ~(null | wrong_type)
            for rule in field.rules:
                passed = np.ones(size, bool)
                if checkable.any():
                    passed[checkable] = rule.vector(values[checkable])
                failures.append((~passed, rule.check, rule.expected))
            for mask, _check, expected in failures:
                for row in np.flatnonzero(mask):
                    reasons.setdefault(int(row), []).append(
                        f"{field.name}: expected {expected}; received {_cell(series, row)}"
                    )
                bad |= mask
            clean[field.name] = values
        valid = ~bad
        typed = pd.DataFrame({name: clean[name][valid] for name in self.names})
        for field in self.fields:
            typed[field.name] = typed[field.name].astype(field.dtype)
        return FrameCheck(valid, ["; ".join(reasons[row]) for row in sorted(reasons)], typed)


@dataclass
class FrameCheck:
    valid: np.ndarray  # one bool per input row
    reasons: list[str]  # one sentence per invalid row, in row order
    frame: pd.DataFrame  # the valid rows, typed as the contract says, index reset


def _typed(series: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """(values as the contract's kind, wrong-type mask, null mask) for one column of a chunk."""
    null = np.asarray(series.isna(), bool)
    if kind == "str":
        if pd.api.types.is_string_dtype(series) and (
            series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) == "string"
        ):
            return series, np.zeros(len(series), bool), null
        is_text = np.fromiter((type(v) is str for v in series), bool, len(series))
        return series.where(is_text), ~is_text & ~null, null
    if pd.api.types.is_bool_dtype(series):
        numbers = pd.Series(np.full(len(series), np.nan))
        return numbers, ~null, null
    if pd.api.types.is_numeric_dtype(series):
        numbers = series.astype("float64")
        wrong = np.zeros(len(series), bool)
    else:
        text = series.where(~series.map(lambda v: isinstance(v, bool)))
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        wrong = np.asarray(numbers.isna(), bool) & ~null
    if kind == "int":
        finite = np.isfinite(numbers.to_numpy())
        whole = np.zeros(len(series), bool)
        whole[finite] = numbers.to_numpy()[finite] % 1 == 0
        wrong |= ~whole & ~null & ~wrong
    return numbers, wrong, null


def _cell(series: pd.Series, row: int) -> str:
    value = series.iloc[row]
    return "null" if _is_null(value) or value is pd.NA else shown(value)


@cache
def contract(model: type[pa.DataFrameModel] = ModelInput) -> Contract:
    """The compiled contract for ``model`` (compiled once per process)."""
    return Contract(model.to_schema())


def contract_kinds() -> dict[str, str]:
    """Contract column -> int | float | str: how drift judges each column."""
    return {field.name: field.kind for field in contract().fields}


def problem_dicts(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """Problems as JSON-ready dicts, each with a one-line ``message``."""
    return [{**problem.to_dict(), "message": problem.sentence()} for problem in problems]
