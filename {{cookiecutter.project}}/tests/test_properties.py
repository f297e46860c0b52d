"""Property tests whose inputs are generated from the pandera contract itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from contract_data import breaking_value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import frames

from {{ cookiecutter.package }}.contract.schema import ModelInput
from {{ cookiecutter.package }}.contract.validation import FEATURES, NUMERIC, ContractError, validate

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
valid_frames = frames(ModelInput.to_schema(), max_size=12)


@SETTINGS
@given(frame=valid_frames)
def test_any_valid_frame_gets_finite_probabilities(trained, frame: pd.DataFrame) -> None:
    probabilities = trained.predict_proba(validate(frame))
    assert probabilities.shape == (len(frame), 2)
    assert np.isfinite(probabilities).all()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


@SETTINGS
@given(frame=valid_frames, seed=st.integers(0, 2**32 - 1))
def test_row_order_does_not_change_per_row_predictions(
    trained, frame: pd.DataFrame, seed: int
) -> None:
    order = np.random.default_rng(seed).permutation(len(frame))
    shuffled = frame.iloc[order].reset_index(drop=True)
    np.testing.assert_allclose(
        trained.predict_proba(shuffled), trained.predict_proba(frame)[order], rtol=1e-6, atol=1e-9
    )


@st.composite
def broken_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, str]:
    """A valid frame with one column broken in one of the ways real feeds break."""
    frame = draw(valid_frames).copy()
    column = draw(st.sampled_from(FEATURES))
    how = draw(st.sampled_from(["drop", "as_text", "null", "out_of_rule"]))
    nullable = ModelInput.to_schema().columns[column].nullable
    if how == "as_text" and column in NUMERIC:
        frame[column] = frame[column].astype(str)
    elif how == "null" and not nullable:
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[0], column] = None
    elif how == "out_of_rule" and (value := breaking_value(column)) is not None:
        frame.loc[frame.index[0], column] = value  # of the column's own type
    else:  # dropped, or a break this column cannot have (a null where null is allowed)
        frame = frame.drop(columns=[column])
    return frame, column


@SETTINGS
@given(case=broken_frames())
def test_invalid_frames_are_rejected_never_coerced(case: tuple[pd.DataFrame, str]) -> None:
    frame, column = case
    with pytest.raises(ContractError) as caught:
        validate(frame)
    assert column in {problem.column for problem in caught.value.problems}
