"""Model tests on the real holdout: metric floor, determinism, save/load, no skew."""

from __future__ import annotations

import numpy as np
import pandas as pd
from bad_records import records_with_nulls
from contract_data import as_records
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from strategies import frames

from {{ cookiecutter.package }}.contract.records import contract
from {{ cookiecutter.package }}.contract.schema import ModelInput
from {{ cookiecutter.package }}.contract.validation import FEATURES, inputs
from {{ cookiecutter.package }}.data import labels
from {{ cookiecutter.package }}.modeling.features import build_features
from {{ cookiecutter.package }}.modeling.metrics import METRICS, compute
from {{ cookiecutter.package }}.modeling.model import COMPILED_MAX_ROWS, load_model
from {{ cookiecutter.package }}.pipeline.evaluate import score
from {{ cookiecutter.package }}.pipeline.train import fit


def holdout_metrics(model, test: pd.DataFrame, settings) -> dict[str, float]:
    return compute(labels(test, settings.data), score(model, test), settings.evaluate.threshold)


def test_holdout_metric_floor(trained, splits, settings) -> None:
    """Every limit params.yaml sets (evaluate.at_least / at_most) holds on the holdout."""
    values = holdout_metrics(trained, splits[1], settings)
    limits = {**settings.evaluate.at_least, **settings.evaluate.at_most}
    assert limits, "params.yaml evaluate sets no limit: the gate would have nothing to hold"
    for name, limit in limits.items():
        assert METRICS[name].regression(limit, values[name]) <= 0, (name, limit, values)


def test_same_seed_same_metrics(trained, splits, settings) -> None:
    again = fit(settings, splits[0])
    assert holdout_metrics(again, splits[1], settings) == holdout_metrics(
        trained, splits[1], settings
    )


def test_save_load_round_trip_gives_identical_predictions(trained, records, tmp_path) -> None:
    trained.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(records), trained.predict_proba(records))


def test_training_and_single_row_serving_features_are_identical(records: pd.DataFrame) -> None:
    """The skew test: features of a batch equal features built one request at a time."""
    batch = build_features(records)
    one_by_one = pd.concat(
        [build_features(records.iloc[[i]][FEATURES]) for i in range(len(records))]
    )
    pd.testing.assert_frame_equal(batch, one_by_one)


def test_single_row_predictions_equal_batch_predictions(trained, records: pd.DataFrame) -> None:
    batch = trained.predict_proba(records)
    single = np.vstack([trained.predict_proba(records.iloc[[i]]) for i in range(len(records))])
    np.testing.assert_allclose(single, batch, rtol=1e-6, atol=1e-7)


@examples(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frame=frames(ModelInput.to_schema(), max_size=12))
def test_service_batch_and_training_paths_give_the_same_probabilities(
    trained, settings, frame: pd.DataFrame
) -> None:
    """The skew test across code paths, for the family this project trains.

    Training and evaluation score a validated frame; batch prediction a checked file chunk; the
    service JSON records without a DataFrame (modeling/fast.py), alone or batched together, on
    the compiled trees (modeling/trees.py) up to COMPILED_MAX_ROWS and the classifier beyond.
    """
    training = trained.predict_proba(inputs(frame))
    threshold = settings.evaluate.threshold
    records = as_records(frame)
    paths = {
        "batch": trained.predict_proba(contract().check_frame(frame).frame),
        "records together": trained.predict_records(records),
        "one record at a time": np.vstack([trained.predict_records([r]) for r in records]),
        "past the compiled-tree limit": trained.predict_records(
            records * (COMPILED_MAX_ROWS // len(records) + 1)
        )[: len(records)],
    }
    for name, probabilities in paths.items():
        np.testing.assert_allclose(probabilities, training, rtol=0, atol=1e-9, err_msg=name)
        assert ((probabilities[:, 1] >= threshold) == (training[:, 1] >= threshold)).all(), name


@examples(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(records_with_nulls(), min_size=1, max_size=6))
def test_nulls_in_every_nullable_field_score_the_same_on_every_path(trained, records) -> None:
    """The skew test where paths most easily part: a null in every nullable field, scored by
    the service (records, compiled), batch (a checked file chunk) and training (a frame)."""
    frame = contract().to_frame(records)
    training = trained.predict_proba(inputs(frame))
    batch = trained.predict_proba(contract().check_frame(pd.DataFrame(records)).frame)
    np.testing.assert_allclose(batch, training, rtol=0, atol=1e-9)
    np.testing.assert_allclose(trained.predict_records(records), training, rtol=0, atol=1e-9)
