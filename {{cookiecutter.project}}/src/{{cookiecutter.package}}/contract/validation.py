"""Checking data against the contract in schema.py, and the contract's column groups.

schema.py holds only the contract itself (what `adopt` writes and a data owner reviews); this
module holds what every stage, batch and the service do with it: validate a frame, name each
broken promise as a ``Problem``, and split the model's input columns into text and numbers.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from {{ cookiecutter.package }}.contract.schema import ModelInput

FEATURES: list[str] = list(ModelInput.to_schema().columns)
CATEGORICAL: list[str] = [
    name
    for name, column in ModelInput.to_schema().columns.items()
    if "str" in str(column.dtype).lower()
]
NUMERIC: list[str] = [name for name in FEATURES if name not in CATEGORICAL]


@dataclass
class Problem:
    """One broken promise of the contract, in words a data owner can act on."""

    column: str
    check: str
    expected: str
    received: str
    rows: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def sentence(self) -> str:
        where = f" (rows {', '.join(map(str, self.rows[:5]))})" if self.rows else ""
        return f"{self.column}: expected {self.expected}; received {self.received}{where}"

    def to_dict(self) -> dict:
        return asdict(self)


class ContractError(ValueError):
    """Raised when data breaks the contract; carries every problem, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(problem.sentence() for problem in problems))


def _expected_dtype(schema: pa.DataFrameSchema, column: str) -> str:
    spec = schema.columns.get(column)
    return str(spec.dtype) if spec is not None else "?"


def problems_from(error: pa.errors.SchemaErrors, schema: pa.DataFrameSchema) -> list[Problem]:
    """Group pandera's failure cases into one Problem per (column, check)."""
    cases = error.failure_cases
    found: list[Problem] = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        column = str(column)
        check = str(check)
        values = [str(value) for value in group["failure_case"].head(5)]
        rows = [int(index) for index in group["index"].dropna().head(20)]
        if check == "column_in_schema":
            found.extend(
                Problem(str(value), "extra column", "no such column", "an extra column")
                for value in group["failure_case"]
            )
        elif check == "column_in_dataframe":
            found.extend(
                Problem(str(value), "missing column", "a required column", "nothing")
                for value in group["failure_case"]
            )
        elif check.startswith("dtype("):
            found.append(
                Problem(column, "dtype", _expected_dtype(schema, column), ", ".join(values))
            )
        elif check == "not_nullable":
            found.append(Problem(column, check, "a value", "null", rows))
        else:
            if any(p.column == column and p.check == "dtype" for p in found):
                continue  # value checks on a wrongly typed column only repeat the dtype problem
            found.append(Problem(column, check, check, ", ".join(values), rows, values))
    return found


def validate(frame: pd.DataFrame, model: type[pa.DataFrameModel] = ModelInput) -> pd.DataFrame:
    """Return ``frame`` if it keeps the contract; raise ContractError naming every problem."""
    schema = model.to_schema()
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as error:
        raise ContractError(problems_from(error, schema)) from None


def inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The model input columns of labelled rows, validated: nothing is trained or scored
    on unchecked data. A contract column the frame lacks is a Problem, not a KeyError."""
    return validate(frame[[name for name in FEATURES if name in frame.columns]], ModelInput)


def missing_column(error: KeyError) -> str | None:
    """One line for a column a module reads and the data lacks (pandas' KeyError): which
    column, which module of this package reads it, and the fix. None for any other KeyError."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames or "pandas" not in Path(frames[-1].filename).parts:
        return None
    package = Path(__file__).resolve().parents[1]
    ours = [frame for frame in frames if Path(frame.filename).resolve().is_relative_to(package)]
    if not ours:
        return None
    text = re.sub(r"dtype='[^']*'", "", str(error.args[0]) if error.args else "")
    names = re.findall(r"'([^']+)'", text) if " " in text else [text]
    module = Path(ours[-1].filename).resolve().relative_to(package)
    return (
        f"column {', '.join(map(repr, names))} is not in the data: {module} "
        f"({ours[-1].name}, line {ours[-1].lineno}) reads it, and the contract "
        "(contract/schema.py) has no such column. Remove it from that module, or put the "
        "column back in the contract and the data (`make adopt` writes the contract from a file)."
    )
