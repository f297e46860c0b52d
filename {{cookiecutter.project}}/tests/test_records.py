"""The compiled contract (records.py) agrees with pandera, only faster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from bad_records import broken_records, valid_records
from contract_data import FIELDS, as_records, column, columns, wrong_type
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import frames

from {{ cookiecutter.package }}.contract.records import Contract, contract
from {{ cookiecutter.package }}.contract.schema import ModelInput
from {{ cookiecutter.package }}.contract.validation import FEATURES, ContractError, validate

# Examples per property: the profile's (hypothesis' 100; `make test` loads the quick profile).
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SCHEMA = ModelInput.to_schema()


def pandera_columns(frame: pd.DataFrame) -> set[str]:
    """Columns pandera names when ``frame`` breaks the contract (empty when it keeps it)."""
    try:
        validate(frame)
    except ContractError as error:
        return {problem.column for problem in error.problems}
    return set()


@SETTINGS
@given(frame=frames(SCHEMA, max_size=8))
def test_valid_frames_pass_both_checks(frame: pd.DataFrame) -> None:
    assert pandera_columns(frame) == set()
    records = frame.astype(object).to_dict("records")
    records = [{k: None if v != v else v for k, v in r.items()} for r in records]
    assert contract().check_records(records) == []
    assert contract().check_frame(frame).valid.all()


@SETTINGS
@given(case=broken_records())
def test_broken_records_are_rejected_by_both_naming_the_same_field(case) -> None:
    record, name, how = case
    fast = {problem.column for problem in contract().check_record(record)}
    assert fast == {name}, how
    assert name in pandera_columns(pd.DataFrame([record])), how


@SETTINGS
@given(case=broken_records(), size=st.integers(1, 6), data=st.data())
def test_broken_cells_in_a_chunk_fail_only_their_row(case, size: int, data) -> None:
    record, name, how = case
    if how in {"missing", "extra"}:
        return  # whole-column problems of files are handled before rows are checked
    value = record.get(name)
    # In a file a whole number read as a float (4.0) counts as an integer, by design: one empty
    # cell turns a CSV integer column into floats. JSON records still reject it (test above).
    kind = {field.name: field.kind for field in contract().fields}[name]
    whole = isinstance(value, float) and value.is_integer()
    assume(not (how == "wrong_type" and kind == "int" and whole))
    good = [data.draw(valid_records()) for _ in range(size)]
    at = data.draw(st.integers(0, size))
    chunk = pd.DataFrame([*good[:at], record, *good[at:]], columns=FIELDS)
    verdict = contract().check_frame(chunk)
    assert verdict.valid.tolist() == [row != at for row in range(size + 1)], how
    assert verdict.reasons[0].startswith(f"{name}: expected"), verdict.reasons
    assert name in pandera_columns(chunk.iloc[[at]].reset_index(drop=True)), how
    # The valid rows come back typed as the contract says: pandera accepts them as they are.
    assert len(validate(verdict.frame)) == size


def test_every_problem_is_named_with_expected_and_received() -> None:
    checker = contract()
    typed, gone = column(kinds={"int", "float"}), FEATURES[-1]
    gone = gone if gone != typed else FEATURES[0]
    required = column(nullable=False, kinds={"int", "float", "str"})
    record = {name: None for name in FEATURES} | {typed: wrong_type(typed), "feature_c": 1.5}
    del record[gone]
    problems = {p.column: p for p in checker.check_record(record)}
    kinds = {"int": "int64 (a whole number)", "float": "float64 (a number)"}
    assert problems[typed].expected == kinds[checker_kind(typed)]
    assert problems[typed].received == "'72' (str)"
    assert problems["feature_c"].check == "extra column"
    assert problems[gone].check == "missing column"
    if required not in {typed, gone}:
        assert problems[required].check == "not_nullable"
    for name in columns(nullable=True):  # None is a valid value there
        assert name not in problems or name in {typed, gone}


def checker_kind(name: str) -> str:
    return {field.name: field.kind for field in contract().fields}[name]


def test_json_numbers_fill_float_fields_but_not_int_fields(records: pd.DataFrame) -> None:
    record = as_records(records)[0]
    if number := columns(kinds={"float"}):
        # A whole number sent without its ".0" is judged as the same number sent with it.
        whole = round(float(records[number[0]].dropna().iloc[0]))
        as_float = contract().check_record(record | {number[0]: float(whole)})
        as_int = contract().check_record(record | {number[0]: whole})
        assert [p.check for p in as_int] == [p.check for p in as_float]
    integer = column(kinds={"int"})
    for value in (3.0, True, "3"):
        (problem,) = contract().check_record(record | {integer: value})
        assert (problem.column, problem.check) == (integer, "dtype")


def test_to_frame_gives_the_model_what_training_gave_it(trained, records: pd.DataFrame) -> None:
    as_json = records.astype(object).to_dict("records")
    frame = contract().to_frame(as_json)
    assert list(frame.columns) == FEATURES
    assert len(validate(frame)) == len(records)
    np.testing.assert_array_equal(trained.predict_proba(frame), trained.predict_proba(records))


def test_checks_it_cannot_compile_still_run_through_pandera() -> None:
    schema = pa.DataFrameSchema(
        {"code": pa.Column(str, pa.Check.str_length(min_value=2)), "n": pa.Column(int)}
    )
    checker = Contract(schema)
    assert checker.check_record({"code": "ab", "n": 1}) == []
    (problem,) = checker.check_record({"code": "a", "n": 1})
    assert problem.column == "code" and "str_length" in problem.check
    with pytest.raises(TypeError, match=r"records\.py cannot compile column 'when'"):
        Contract(pa.DataFrameSchema({"when": pa.Column("datetime64[ns]")}))
