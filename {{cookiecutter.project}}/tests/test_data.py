"""Data tests on the project's data (params.yaml data.source): anonymisation, balance, split."""

from __future__ import annotations

import pandas as pd
import pytest

from {{ cookiecutter.package }}.data import (
    PII_SALT_ENV,
    anonymise,
    ingest,
    labels,
    read_table,
    unsalted_warning,
)


def test_pii_is_hashed_deterministically_and_salted(
    raw_frame: pd.DataFrame, settings, monkeypatch
) -> None:
    data = settings.data
    name = (data.pii.hash or [data.id or str(raw_frame.columns[0])])[0]
    first = anonymise(raw_frame.head(50), [name], [])
    again = anonymise(raw_frame.head(50), [name], [])
    assert first[name].tolist() == again[name].tolist()
    assert not set(first[name]) & set(raw_frame[name].astype(str))
    monkeypatch.setenv("PII_SALT", "another-salt")
    salted = anonymise(raw_frame.head(50), [name], [])
    assert not set(salted[name]) & set(first[name])


def test_an_unsalted_hash_is_named_once_with_what_it_allows(monkeypatch) -> None:
    monkeypatch.delenv(PII_SALT_ENV, raising=False)
    warning = unsalted_warning(["account"])
    assert warning is not None and warning.startswith(f"{PII_SALT_ENV} is empty")
    assert "account" in warning and "dictionary" in warning
    assert unsalted_warning([]) is None  # nothing hashed: nothing to salt
    monkeypatch.setenv(PII_SALT_ENV, "a-long-random-string")
    assert unsalted_warning(["account"]) is None


def test_dropped_pii_is_gone_and_absent_columns_are_tolerated(raw_frame: pd.DataFrame) -> None:
    dropped = str(raw_frame.columns[0])
    result = anonymise(raw_frame.head(5), ["not_there"], [dropped, "also_not_there"])
    assert dropped not in result.columns and len(result) == 5


def test_label_balance_is_plausible(clean_frame: pd.DataFrame, settings) -> None:
    rate = labels(clean_frame, settings.data).mean()
    assert 0 < rate < 1, "the data holds one class only: check data.positive_class"


def test_split_is_disjoint_stratified_and_complete(
    splits, clean_frame: pd.DataFrame, settings
) -> None:
    train, test = splits
    assert len(train) + len(test) == len(clean_frame)
    if settings.data.id:
        assert not set(train[settings.data.id]) & set(test[settings.data.id])
    rate = lambda frame: labels(frame, settings.data).mean()  # noqa: E731
    assert rate(train) == pytest.approx(rate(test), abs=0.01)


def test_ingest_writes_the_raw_file(tmp_path, settings, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    raw = ingest(settings.data)
    frame = read_table(raw)
    assert (
        raw == tmp_path / settings.data.raw
        or raw.resolve() == (tmp_path / settings.data.raw).resolve()
    )
    expected = {settings.data.target} | ({settings.data.id} if settings.data.id else set())
    assert expected <= set(frame.columns)
