"""The compiled trees (modeling/trees.py) against the classifier's own predict_proba, bit for bit.

Inputs are drawn from each column's own split thresholds (a value equal to a threshold must go
left), values between and beyond them, and missing values, on the project's boosted model and on
one trained with missing values, so that both directions of ``missing_go_to_left`` are taken.
"""

from __future__ import annotations

import numpy as np
import pytest
from contract_data import as_records
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from {{ cookiecutter.package }}.contract.validation import inputs
from {{ cookiecutter.package }}.data import labels
from {{ cookiecutter.package }}.modeling.features import build_features
from {{ cookiecutter.package }}.modeling.model import COMPILED_MAX_ROWS, SklearnModel
from {{ cookiecutter.package }}.modeling.trees import compile_trees


@pytest.fixture(scope="module")
def boosted(settings, splits) -> SklearnModel:
    """The sklearn family with params.yaml's settings (whatever family the project trains)."""
    train = splits[0]
    model = SklearnModel(settings.train.sklearn.model_dump(), settings.seed)
    return model.fit(inputs(train), labels(train, settings.data))


@pytest.fixture(scope="module")
def with_missing() -> HistGradientBoostingClassifier:
    """A classifier that saw missing values in training, in several columns."""
    features, target = make_classification(n_samples=600, n_features=6, random_state=0)
    gaps = np.random.default_rng(0).random(features.shape) < 0.2
    features[gaps] = np.nan
    return HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(features, target)


def split_nodes(classifier: HistGradientBoostingClassifier) -> np.ndarray:
    """Every tree's split nodes (not its leaves), one tree after another."""
    nodes = np.concatenate([iteration[0].nodes for iteration in classifier._predictors])
    return nodes[nodes["is_leaf"] == 0]


def split_points(classifier: HistGradientBoostingClassifier) -> list[np.ndarray]:
    """Per input column, the thresholds its splits use."""
    splits = split_nodes(classifier)
    width = classifier.n_features_in_
    return [np.unique(splits["num_threshold"][splits["feature_idx"] == i]) for i in range(width)]


def matrices(classifier: HistGradientBoostingClassifier) -> st.SearchStrategy[np.ndarray]:
    """Rows of values on, between and beyond the split thresholds, and missing values."""
    columns = []
    for points in split_points(classifier):
        if not len(points):  # no tree reads this column: any value does
            columns.append(st.just(0.0))
            continue
        on = st.sampled_from(points.tolist())
        near = on.map(lambda value: float(np.nextafter(value, np.inf)))
        anywhere = st.floats(-1e6, 1e6, allow_nan=False)
        columns.append(st.one_of(on, near, anywhere, st.just(np.nan), st.just(np.inf)))
    row = st.tuples(*columns)
    return st.lists(row, min_size=1, max_size=12).map(lambda rows: np.array(rows, dtype=float))


def assert_same_as_classifier(classifier, rows: np.ndarray) -> None:
    compiled = compile_trees(classifier)
    assert compiled is not None
    expected = classifier.predict_proba(rows)
    np.testing.assert_array_equal(compiled.predict_proba(rows), expected)
    for index in range(len(rows)):
        np.testing.assert_array_equal(compiled.predict_proba(rows[[index]]), expected[[index]])


def test_the_project_model_compiles_and_agrees_on_the_holdout(boosted, splits) -> None:
    rows = boosted.pipeline[0].transform(build_features(inputs(splits[1])))
    assert_same_as_classifier(boosted.pipeline[-1], np.asarray(rows, dtype=float))


# A row is as wide as the model's input: a contract with many text values makes it wide.
@examples(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(data=st.data())
def test_compiled_trees_equal_the_classifier_on_thresholds_and_gaps(boosted, data) -> None:
    classifier = boosted.pipeline[-1]
    assert_same_as_classifier(classifier, data.draw(matrices(classifier)))


@examples(max_examples=40, deadline=None)
@given(data=st.data())
def test_missing_values_go_where_training_sent_them(with_missing, data) -> None:
    directions = set(split_nodes(with_missing)["missing_go_to_left"].tolist())
    assert directions == {0, 1}, "the fixture must send missing values both ways"
    assert_same_as_classifier(with_missing, data.draw(matrices(with_missing)))


def test_records_on_both_sides_of_the_compiled_limit_agree(boosted, splits) -> None:
    """predict_records switches to the classifier past COMPILED_MAX_ROWS: same answers."""
    records = as_records(inputs(splits[1]).head(COMPILED_MAX_ROWS + 8))
    many = boosted.predict_records(records)  # the classifier's own predict_proba
    few = np.vstack(
        [boosted.predict_records(records[start : start + 4]) for start in range(0, len(records), 4)]
    )
    np.testing.assert_array_equal(few, many)


def test_what_it_cannot_compile_is_left_to_the_classifier() -> None:
    features, target = make_classification(n_samples=300, n_features=4, random_state=0)
    features[:, 0] = np.round(np.abs(features[:, 0]) * 2) % 4  # a small categorical column
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
    assert compile_trees(categorical.fit(features, target)) is None
    three = np.arange(len(target)) % 3
    assert compile_trees(HistGradientBoostingClassifier(max_iter=5).fit(features, three)) is None
    assert compile_trees(LogisticRegression().fit(features, target)) is None
    assert compile_trees(HistGradientBoostingClassifier()) is None  # not fitted
