"""Hypothesis strategies for JSON records, valid and broken, read from the pandera contract.

Shared by the contract tests (fast check vs pandera) and the service tests (over HTTP).
"""

from __future__ import annotations

from typing import Any

from contract_data import FIELDS, SCHEMA, as_records
from contract_data import checks as _stats
from contract_data import kind as _kind
from hypothesis import strategies as st
from strategies import frames

BREAKS = ["missing", "extra", "wrong_type", "null", "out_of_range", "unknown_category"]
NULLABLE = [name for name in FIELDS if SCHEMA.columns[name].nullable]


def valid_records() -> st.SearchStrategy[dict[str, Any]]:
    """One contract-valid record as a JSON client would send it (NaN becomes null)."""
    return frames(SCHEMA, min_size=1, max_size=1).map(lambda frame: as_records(frame)[0])


def records_with_nulls() -> st.SearchStrategy[dict[str, Any]]:
    """A contract-valid record with null in every nullable field: missing values are where the
    service, batch and training most easily part ways."""
    return valid_records().map(lambda record: record | dict.fromkeys(NULLABLE))


def _wrong_values(name: str) -> st.SearchStrategy[Any]:
    """Values of a JSON type the field does not take (for an int field, any float too)."""
    kind = _kind(name)
    floats = st.floats(allow_nan=False, allow_infinity=False)
    anything = st.one_of(st.booleans(), st.lists(st.integers(), max_size=2), st.just({}))
    if kind == "int":
        return st.one_of(anything, st.text(max_size=5), floats)
    if kind == "float":
        return st.one_of(anything, st.text(max_size=5))
    return st.one_of(anything, st.integers(), floats)


def _breakable(name: str, how: str) -> bool:
    stats = _stats(name)
    if how == "null":
        return not SCHEMA.columns[name].nullable
    if how == "out_of_range":
        return "greater_than_or_equal_to" in stats or "less_than_or_equal_to" in stats
    if how == "unknown_category":
        return "isin" in stats
    return True


@st.composite
def broken_records(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    """(record, the field it breaks, how): a valid record with one field broken."""
    record = draw(valid_records())
    how = draw(st.sampled_from(BREAKS))
    name = draw(st.sampled_from([n for n in FIELDS if _breakable(n, how)]))
    if how == "missing":
        del record[name]
    elif how == "extra":
        name = draw(
            st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
                lambda n: n not in FIELDS
            )
        )
        record[name] = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
    elif how == "wrong_type":
        record[name] = draw(_wrong_values(name))
    elif how == "null":
        record[name] = None
    elif how == "out_of_range":
        stats = _stats(name)
        low = stats.get("greater_than_or_equal_to", {}).get("min_value")
        high = stats.get("less_than_or_equal_to", {}).get("max_value")
        choices = ([low - 1] if low is not None else []) + ([high + 1] if high is not None else [])
        value = draw(st.sampled_from(choices))
        record[name] = float(value) if _kind(name) == "float" else int(value)
    else:
        allowed = _stats(name)["isin"]["allowed_values"]
        if _kind(name) == "str":
            record[name] = draw(st.text(min_size=1, max_size=8).filter(lambda v: v not in allowed))
        else:
            record[name] = draw(st.integers(-1000, 1000).filter(lambda v: v not in allowed))
    return record, name, how
