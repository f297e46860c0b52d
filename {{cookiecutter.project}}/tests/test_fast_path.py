"""The compiled record features (modeling/fast.py) against the fitted preprocessor itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bad_records import records_with_nulls
from contract_data import as_records, column
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder
from strategies import frames

from {{ cookiecutter.package }}.contract.records import contract
from {{ cookiecutter.package }}.contract.schema import ModelInput
from {{ cookiecutter.package }}.contract.validation import CATEGORICAL, FEATURES, NUMERIC
from {{ cookiecutter.package }}.modeling.engineered import DERIVED
from {{ cookiecutter.package }}.modeling.fast import compile_features, record_features
from {{ cookiecutter.package }}.modeling.features import build_features, make_preprocessor

valid_frames = frames(ModelInput.to_schema(), max_size=12)


@pytest.fixture(scope="module")
def fitted(splits) -> ColumnTransformer:
    return make_preprocessor().fit(build_features(splits[0][FEATURES]))


@examples(max_examples=60, deadline=None)
@given(frame=valid_frames)
def test_compiled_features_equal_the_preprocessor_bit_for_bit(fitted, frame: pd.DataFrame):
    compiled = compile_features(fitted)
    assert compiled is not None, "make_preprocessor's steps must compile"
    expected = fitted.transform(build_features(frame))
    records = as_records(frame)
    np.testing.assert_array_equal(compiled(records), expected)
    for row, record in enumerate(records):
        np.testing.assert_array_equal(compiled([record]), expected[[row]])


@examples(deadline=None)
@given(records=st.lists(records_with_nulls(), min_size=1, max_size=6))
def test_nulls_in_every_nullable_field_take_the_training_path(fitted, records) -> None:
    """JSON nulls, compiled, equal what training's transform makes of the same rows."""
    compiled = compile_features(fitted)
    assert compiled is not None
    training = fitted.transform(build_features(contract().to_frame(records)))
    np.testing.assert_array_equal(compiled(records), training)


def test_unseen_category_is_all_zeros_as_the_encoder_ignores_it(fitted, records) -> None:
    text = column(kinds={"str"})
    record = as_records(records.head(1))[0] | {text: "a value never seen in training"}
    compiled = compile_features(fitted)
    assert compiled is not None
    frame = contract().to_frame([record])
    np.testing.assert_array_equal(compiled([record]), fitted.transform(build_features(frame)))


def test_missing_text_learnt_in_training_is_its_own_category() -> None:
    """A second, synthetic contract whose training data has missing text: the compiled path
    must give a JSON null the encoder's missing-value column, not all zeros (training/serving
    skew: with an informative missing value the scores parted by up to 0.98)."""
    plan = pd.Series(["basic", None, "pro", "basic", None, "plus"], dtype="str")
    amount = pd.Series([1.0, np.nan, 3.5, 2.0, 0.5, np.nan])
    train = pd.DataFrame({"plan": plan, "amount": amount})
    encoder = make_preprocessor(["plan"], ["amount"])
    fitted = encoder.fit(train.astype({"plan": object}).where(train.notna(), np.nan))
    compiled = compile_features(fitted)
    assert compiled is not None
    records = [{"plan": None, "amount": None}, {"plan": "pro", "amount": 2.0}]
    frame = pd.DataFrame(records).astype({"plan": object, "amount": float})
    expected = fitted.transform(frame.where(frame.notna(), np.nan))
    assert expected[0, :4].tolist() == [0.0, 0.0, 0.0, 1.0]  # basic, plus, pro, missing
    np.testing.assert_array_equal(compiled(records), expected)


def test_steps_it_cannot_compile_go_through_a_dataframe(splits, records) -> None:
    one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    other = ColumnTransformer(
        [("categories", one_hot, CATEGORICAL), ("numbers", MinMaxScaler(), NUMERIC + DERIVED)]
    ).fit(build_features(splits[0][FEATURES]))
    assert compile_features(other) is None
    rows = as_records(records)
    expected = other.transform(build_features(records))
    np.testing.assert_array_equal(record_features(other)(rows), expected)
