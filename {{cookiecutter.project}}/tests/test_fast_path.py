"""The compiled record features (modeling/fast.py) against the fitted preprocessor itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as examples
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder
from strategies import frames
from test_model import as_records

from {{ cookiecutter.package }}.contract.schema import CATEGORICAL, FEATURES, NUMERIC, ModelInput
from {{ cookiecutter.package }}.modeling.fast import compile_features, record_features
from {{ cookiecutter.package }}.modeling.features import (
    DERIVED,
    build_features,
    make_preprocessor,
)

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


def test_unseen_category_is_all_zeros_as_the_encoder_ignores_it(fitted, records) -> None:
    record = as_records(records.head(1))[0] | {"contract": "Ten year"}
    compiled = compile_features(fitted)
    assert compiled is not None
    frame = pd.DataFrame([record])[FEATURES]
    np.testing.assert_array_equal(compiled([record]), fitted.transform(build_features(frame)))


def test_steps_it_cannot_compile_go_through_a_dataframe(splits, records) -> None:
    one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    other = ColumnTransformer(
        [("categories", one_hot, CATEGORICAL), ("numbers", MinMaxScaler(), NUMERIC + DERIVED)]
    ).fit(build_features(splits[0][FEATURES]))
    assert compile_features(other) is None
    rows = as_records(records)
    expected = other.transform(build_features(records))
    np.testing.assert_array_equal(record_features(other)(rows), expected)
