"""The contract rejects what it should, names every problem, and never coerces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from contract_data import breaking_value, column, columns

from {{ cookiecutter.package }}.contract.schema import ModelInput, RawRecord
from {{ cookiecutter.package }}.contract.validation import FEATURES, ContractError, validate


def problems(frame: pd.DataFrame, model=ModelInput) -> dict[tuple[str, str], object]:
    with pytest.raises(ContractError) as caught:
        validate(frame, model)
    return {(p.column, p.check): p for p in caught.value.problems}


def test_real_data_keeps_the_contract(clean_frame: pd.DataFrame) -> None:
    validated = validate(clean_frame, RawRecord)
    assert len(validated) == len(clean_frame) > 0


def test_missing_extra_and_wrong_dtype_are_all_named(records: pd.DataFrame) -> None:
    gone, number = FEATURES[0], column(kinds={"int", "float"})
    if gone == number:
        gone = FEATURES[1]
    broken = records.drop(columns=[gone]).assign(
        **{number: records[number].astype(str), "feature_c": 1.5}
    )
    found = problems(broken)
    assert (gone, "missing column") in found
    assert ("feature_c", "extra column") in found
    wrong = found[(number, "dtype")]
    assert wrong.expected == str(ModelInput.to_schema().columns[number].dtype)
    assert "str" in wrong.received


def test_ints_given_as_floats_are_rejected_not_coerced(records: pd.DataFrame) -> None:
    whole = column(kinds={"int"})
    found = problems(records.assign(**{whole: records[whole].astype(float)}))
    assert found[(whole, "dtype")].received == "float64"


def test_a_broken_value_check_names_its_rows(records: pd.DataFrame) -> None:
    checked = next((name for name in FEATURES if breaking_value(name) is not None), None)
    if checked is None:
        pytest.skip("the contract has no value check (range or allowed values) to break")
    broken = records.copy()
    broken.loc[3, checked] = breaking_value(checked)  # the column's own type: no dtype problem
    found = problems(broken)
    (problem,) = (p for (name, _), p in found.items() if name == checked)
    assert problem.check != "dtype" and problem.rows == [3]


def test_a_null_where_the_contract_wants_a_value_names_its_row(records: pd.DataFrame) -> None:
    required = column(nullable=False, kinds={"float", "str"})  # a null keeps their dtype
    broken = records.copy()
    broken.loc[5, required] = None
    assert problems(broken)[(required, "not_nullable")].rows == [5]


def test_nullable_columns_may_be_missing(records: pd.DataFrame) -> None:
    frame = records.copy()
    nullable = column(nullable=True)
    for name in columns(nullable=True):
        frame.loc[0, name] = np.nan
    assert len(validate(frame)) == len(frame)
    assert frame[nullable].isna().iloc[0]


def test_features_list_matches_schema(settings) -> None:
    assert list(ModelInput.to_schema().columns) == FEATURES
    data = settings.data
    labelled = {data.target} | ({data.id} if data.id else set())
    assert set(RawRecord.to_schema().columns) - set(FEATURES) == labelled
