"""A data contract written from a table: the Python `adopt` puts in contract/schema.py.

Each column gets its exact dtype (int64, float64 or text: the contract never coerces), is
nullable only where the table has missing values, lists its allowed values when it is text with
few distinct values, and has a range when it is a number: from 0 (or the power of ten below the
smallest value) to the power of ten above the largest, so the range holds on the table and
leaves room for values of the same size. The id and the label go into ``RawRecord``, every
other column into ``ModelInput``. The output is formatted as ruff formats it (line length 100).
"""

from __future__ import annotations

import json
import keyword
import math
import re
from dataclasses import dataclass, field

import pandas as pd

# Text columns with at most this many distinct values get a list of allowed values.
MAX_CATEGORIES = 50
LINE = 100
# How the header names the raw copy the contract was written from (adopt looks for it).
RAW_COPY = "raw copy: "
KINDS = {"int": "int", "float": "float", "str": "str"}


class UnsupportedColumn(ValueError):
    """A column the contract cannot describe (dates, mixed types): names it and the fix."""


@dataclass
class Column:
    """What the table says about one column, and the contract promise made from it."""

    name: str
    kind: str  # int | float | str
    nullable: bool
    missing: int
    rows: int
    allowed: list[object] | None = None
    low: int | None = None
    high: int | None = None
    unique: bool = False
    distinct: int = 0
    observed: tuple[object, object] | None = None
    values: list[object] = field(default_factory=list)  # the distinct values, when few
    notes: list[str] = field(default_factory=list)


def column_kind(name: str, values: pd.Series) -> str:
    """``int``, ``float`` or ``str`` for a column as pandas read it; anything else is refused."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise UnsupportedColumn(f"column {name!r} holds true/false: write it as 0/1")
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    present = values.dropna()
    if pd.api.types.is_string_dtype(dtype) and all(type(v) is str for v in present):
        return "str"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        problem = "holds dates"
    else:
        kinds = sorted({type(v).__name__ for v in present})
        problem = f"holds {dtype} values ({', '.join(kinds)})"
    raise UnsupportedColumn(
        f"column {name!r} {problem}: the contract takes whole numbers, numbers and text; write "
        "it as one of those in your file (dates as ISO text), or drop it (--drop)"
    )


def _power_of_ten(value: float) -> int:
    """The smallest 10^k (k >= 0) at or above ``value``."""
    return 10 ** max(0, math.ceil(math.log10(value))) if value > 1 else 1


def describe(name: str, values: pd.Series) -> Column:
    """The contract promise for one column, from its values."""
    kind = column_kind(name, values)
    present = values.dropna()
    column = Column(name, kind, bool(values.isna().any()), int(values.isna().sum()), len(values))
    column.distinct = int(present.nunique())
    column.unique = column.distinct == len(values)
    if column.distinct <= MAX_CATEGORIES:
        column.values = sorted(present.unique().tolist())
    if kind == "str":
        if column.distinct <= MAX_CATEGORIES:
            column.allowed = column.values
        else:
            column.notes.append(f"text with {column.distinct:,} distinct values: no allowed list")
    elif len(present):
        smallest, largest = present.min().item(), present.max().item()
        column.observed = (smallest, largest)
        column.low = 0 if smallest >= 0 else -_power_of_ten(-smallest)
        column.high = _power_of_ten(largest) if largest > 0 else 0
    if column.unique and column.rows > 1:
        column.notes.append("every value differs, as in an id: pass --id or --drop for it")
    if column.missing == column.rows:
        column.notes.append("no values at all")
    return column


def describe_frame(frame: pd.DataFrame) -> list[Column]:
    return [describe(str(name), frame[name]) for name in frame.columns]


# --- rendering --------------------------------------------------------------------------------


def _literal(value: object) -> str:
    """A Python literal as ruff writes it: double-quoted text, 1_000 for large whole numbers."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    return repr(value)


def _shown(value: object) -> str:
    """A number for people, inside a description: 1,250 or 0.0417."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


def _attribute(name: str, taken: set[str]) -> str:
    """A Python name for a column: itself when it can be one, else a cleaned-up alias."""
    reserved = keyword.iskeyword(name) or name.startswith("_") or name in {"Config", "Series"}
    if name.isidentifier() and not reserved and name not in taken:
        return name
    base = re.sub(r"\W", "_", name).strip("_").lower() or "column"
    if not base[0].isalpha():
        base = f"c_{base}"
    if keyword.iskeyword(base):
        base = f"{base}_"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}_{number}", number + 1
    return candidate


# An argument of pa.Field: its name, its literal, and a list literal's items (None otherwise).
Argument = tuple[str, str, list[str] | None]


def _arguments(column: Column, role: str) -> list[Argument]:
    arguments: list[Argument] = []
    if role == "id":
        arguments.append(("unique", "True", None))
    allowed = column.allowed if role == "feature" else None
    if role == "target":
        allowed = sorted(column.values)
    if allowed is not None:
        items = [_literal(value) for value in allowed]
        arguments.append(("isin", f"[{', '.join(items)}]", items))
    if column.low is not None and role == "feature":
        arguments += [("ge", _literal(column.low), None), ("le", _literal(column.high), None)]
    if column.nullable:
        arguments.append(("nullable", "True", None))
    notes = []
    if column.observed is not None and role == "feature":
        low, high = column.observed
        notes.append(f"observed {_shown(low)} to {_shown(high)}")
    if column.missing and role == "feature":
        notes.append(f"missing in {column.missing:,} of {column.rows:,} rows")
    if notes:
        arguments.append(("description", _literal("; ".join(notes)), None))
    return arguments


def _field(attribute: str, column: Column, role: str) -> list[str]:
    """One field of a pandera model, split over lines as ruff would split it."""
    arguments = _arguments(column, role)
    if attribute != column.name:
        arguments.insert(0, ("alias", _literal(column.name), None))
    head = f"    {attribute}: Series[{KINDS[column.kind]}] = pa.Field("
    flat = ", ".join(f"{key}={value}" for key, value, _ in arguments)
    if len(head) + len(flat) + 1 <= LINE:
        return [f"{head}{flat})"]
    if len(flat) + 8 <= LINE:
        return [head, f"        {flat}", "    )"]
    lines = [head]
    for key, value, items in arguments:
        if items is None or len(key) + len(value) + 10 <= LINE:
            lines.append(f"        {key}={value},")
        else:  # a list too long for one line: one value per line, as ruff explodes it
            lines += [f"        {key}=[", *(f"            {item}," for item in items), "        ],"]
    return [*lines, "    )"]


HEADER = '''"""The data contract, written by `adopt` from {rows:,} rows of:

    {source}
    {raw_copy}{raw} (sha256 {digest})

``ModelInput`` is what the model needs for one record; ``RawRecord`` adds what training data
also carries: {extra}.
Nothing is coerced: a value of the wrong type is an error, because silently casting it would
hide a broken upstream feed. contract/validation.py checks data against these models;
contract/records.py compiles them for single records.

Review each promise (docs: "Bring your own data"): a range is the data's, widened to powers of
ten; a list of allowed values is every value the data holds; a column is nullable because the
data has missing values in it. Make each one what the data's owner guarantees. The last line is
adopt's fingerprint: once you edit this file, adopt leaves it alone unless you pass --force.
"""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series
'''


def render(
    frame: pd.DataFrame, target: str, id_column: str | None, source: str, raw: str, digest: str
) -> str:
    """schema.py for ``frame`` (the table as the pipeline reads it, PII already hashed)."""
    columns = {column.name: column for column in describe_frame(frame)}
    taken: set[str] = set()
    names = {}
    for name in columns:
        names[name] = _attribute(name, taken)
        taken.add(names[name])
    features = [name for name in columns if name not in {target, id_column}]
    extra = "the id and the label" if id_column else "the label"
    text = HEADER.format(
        rows=len(frame),
        source=_plain(source),
        raw_copy=RAW_COPY,
        raw=_plain(raw),
        digest=digest,
        extra=extra,
    )
    text += '\n\nclass ModelInput(pa.DataFrameModel):\n    """One record as the model sees it '
    text += '(before feature engineering)."""\n\n'
    for name in features:
        text += "\n".join(_field(names[name], columns[name], "feature")) + "\n"
    text += "\n    class Config:\n        strict = True\n        coerce = False\n\n\n"
    text += 'class RawRecord(ModelInput):\n    """A labelled, anonymised training row."""\n\n'
    if id_column:
        text += "\n".join(_field(names[id_column], columns[id_column], "id")) + "\n"
    text += "\n".join(_field(names[target], columns[target], "target")) + "\n"
    return text


def _plain(text: str) -> str:
    """Text safe inside the docstring: no backslashes or triple quotes."""
    return text.replace("\\", "/").replace('"""', "'''")
