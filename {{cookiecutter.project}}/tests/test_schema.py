"""The contract rejects what it should, names every problem, and never coerces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package }}.contract.schema import FEATURES, ContractError, ModelInput, RawRecord, validate


def problems(frame: pd.DataFrame, model=ModelInput) -> dict[tuple[str, str], object]:
    with pytest.raises(ContractError) as caught:
        validate(frame, model)
    return {(p.column, p.check): p for p in caught.value.problems}


def test_real_data_keeps_the_contract(clean_frame: pd.DataFrame) -> None:
    validated = validate(clean_frame, RawRecord)
    assert len(validated) == len(clean_frame) > 5000


def test_missing_extra_and_wrong_dtype_are_all_named(records: pd.DataFrame) -> None:
    broken = records.drop(columns=["contract"]).assign(
        tenure=records["tenure"].astype(str), feature_c=1.5
    )
    found = problems(broken)
    assert ("contract", "missing column") in found
    assert ("feature_c", "extra column") in found
    tenure = found[("tenure", "dtype")]
    assert tenure.expected == "int64" and "str" in tenure.received


def test_ints_given_as_floats_are_rejected_not_coerced(records: pd.DataFrame) -> None:
    found = problems(records.assign(tenure=records["tenure"].astype(float)))
    assert found[("tenure", "dtype")].received == "float64"


def test_out_of_range_unknown_category_and_null_name_rows(records: pd.DataFrame) -> None:
    broken = records.copy()
    broken.loc[3, "monthly_charges"] = -5.0
    broken.loc[4, "contract"] = "Lifetime"
    broken.loc[5, "monthly_charges"] = np.nan
    found = problems(broken)
    range_problem = next(
        p for (col, _), p in found.items() if col == "monthly_charges" and "greater" in p.check
    )
    assert 3 in range_problem.rows
    category = next(p for (col, _), p in found.items() if col == "contract")
    assert "Lifetime" in category.received and category.rows == [4]
    assert found[("monthly_charges", "not_nullable")].rows == [5]


def test_total_charges_may_be_missing_for_new_customers(records: pd.DataFrame) -> None:
    frame = records.copy()
    frame.loc[0, "total_charges"] = np.nan
    assert len(validate(frame)) == len(frame)


def test_features_list_matches_schema() -> None:
    assert list(ModelInput.to_schema().columns) == FEATURES
    assert set(RawRecord.to_schema().columns) - set(FEATURES) == {"customer_id", "churn"}
