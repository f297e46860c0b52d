"""Data tests on the real bundled dataset: anonymisation, balance, split."""

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


def test_pii_is_hashed_deterministically_and_salted(raw_frame: pd.DataFrame, monkeypatch) -> None:
    first = anonymise(raw_frame.head(50), ["customer_id"], [])
    again = anonymise(raw_frame.head(50), ["customer_id"], [])
    assert first["customer_id"].tolist() == again["customer_id"].tolist()
    assert not set(first["customer_id"]) & set(raw_frame["customer_id"].astype(str))
    monkeypatch.setenv("PII_SALT", "another-salt")
    salted = anonymise(raw_frame.head(50), ["customer_id"], [])
    assert not set(salted["customer_id"]) & set(first["customer_id"])


def test_an_unsalted_hash_is_named_once_with_what_it_allows(monkeypatch) -> None:
    monkeypatch.delenv(PII_SALT_ENV, raising=False)
    warning = unsalted_warning(["account"])
    assert warning is not None and warning.startswith(f"{PII_SALT_ENV} is empty")
    assert "account" in warning and "dictionary" in warning
    assert unsalted_warning([]) is None  # nothing hashed: nothing to salt
    monkeypatch.setenv(PII_SALT_ENV, "a-long-random-string")
    assert unsalted_warning(["account"]) is None


def test_dropped_pii_is_gone_and_absent_columns_are_tolerated(raw_frame: pd.DataFrame) -> None:
    result = anonymise(raw_frame.head(5), ["not_there"], ["female", "also_not_there"])
    assert "female" not in result.columns and len(result) == 5


def test_label_balance_is_plausible(clean_frame: pd.DataFrame, settings) -> None:
    rate = labels(clean_frame, settings.data).mean()
    assert 0.1 < rate < 0.5


def test_split_is_disjoint_stratified_and_complete(
    splits, clean_frame: pd.DataFrame, settings
) -> None:
    train, test = splits
    assert len(train) + len(test) == len(clean_frame)
    assert not set(train["customer_id"]) & set(test["customer_id"])
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
    assert {"customer_id", settings.data.target} <= set(frame.columns)
