"""The data contract: one set of pandera models for training, batch and online input.

``ModelInput`` is what the model needs for one customer; ``RawRecord`` adds the id and the
label that training data carries. Nothing is coerced: a value of the wrong type is an error,
because silently casting it would hide a broken upstream feed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

YES_NO_PHONE = ["No", "No phone service", "Yes"]
YES_NO_INTERNET = ["No", "No internet service", "Yes"]


def _flag() -> Series[int]:
    return pa.Field(isin=[0, 1])


def _internet_option() -> Series[str]:
    return pa.Field(isin=YES_NO_INTERNET)


class ModelInput(pa.DataFrameModel):
    """One customer as the model sees it (before feature engineering)."""

    female: Series[int] = _flag()
    senior_citizen: Series[int] = _flag()
    partner: Series[int] = _flag()
    dependents: Series[int] = _flag()
    tenure: Series[int] = pa.Field(ge=0, le=120, description="months as a customer")
    phone_service: Series[int] = _flag()
    multiple_lines: Series[str] = pa.Field(isin=YES_NO_PHONE)
    internet_service: Series[str] = pa.Field(isin=["DSL", "Fiber optic", "No"])
    online_security: Series[str] = _internet_option()
    online_backup: Series[str] = _internet_option()
    device_protection: Series[str] = _internet_option()
    tech_support: Series[str] = _internet_option()
    streaming_tv: Series[str] = _internet_option()
    streaming_movies: Series[str] = _internet_option()
    contract: Series[str] = pa.Field(isin=["Month-to-month", "One year", "Two year"])
    paperless_billing: Series[int] = _flag()
    payment_method: Series[str] = pa.Field(
        isin=[
            "Bank transfer (automatic)",
            "Credit card (automatic)",
            "Electronic check",
            "Mailed check",
        ]
    )
    monthly_charges: Series[float] = pa.Field(ge=0, le=1_000)
    # Missing for brand-new customers who have not been billed yet.
    total_charges: Series[float] = pa.Field(ge=0, le=1_000_000, nullable=True)

    class Config:
        strict = True
        coerce = False


class RawRecord(ModelInput):
    """A labelled, anonymised training row."""

    customer_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    churn: Series[str] = pa.Field(isin=["No", "Yes"])


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
    on unchecked data."""
    return validate(frame[FEATURES], ModelInput)
