"""Batch prediction: a CSV or Parquet file in, predictions out, chunk by chunk.

The same contract as the online service decides which rows the model sees. A row that breaks
it goes to a separate "rejected" file with its reasons; every other row is still predicted.
Columns outside the contract (an id, say) are carried through to both files, next to
``row``, the 0-based position in the input, so results join back to their source. Each row also
carries its key, ``request_id`` (serving/ids.py): the input's own column of that name when it
has one, else ``<run id>-<row>``, the key a labels file names when outcomes come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from {{ cookiecutter.package }}.contract.records import contract
from {{ cookiecutter.package }}.data import table_format
from {{ cookiecutter.package }}.modeling.model import Classifier
from {{ cookiecutter.package }}.serving.ids import ID_FIELD, new_id

CHUNK_ROWS = 100_000


@dataclass
class BatchResult:
    rows: int
    predicted: int
    rejected: int
    output: Path
    rejected_file: Path


def rejected_path(output: Path) -> Path:
    """Default place for rejected rows: next to the output, same format."""
    return output.with_name(f"{output.stem}.rejected{output.suffix}")


class _Reader:
    """Chunks of a CSV or Parquet file, and how far through the file they are."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        if not path.exists():
            raise FileNotFoundError(f"--input {path} does not exist")
        self.path, self.kind, self.chunk_rows = path, table_format(path), chunk_rows
        if self.kind == "parquet":
            self.file = pq.ParquetFile(path)
            self.columns = list(self.file.schema_arrow.names)
            self.total = self.file.metadata.num_rows
        else:
            self.columns = list(pd.read_csv(path, nrows=0).columns)
            self.total = path.stat().st_size  # bytes: CSV row counts are unknown up front
        self.extra = [name for name in self.columns if name not in contract().names]

    def chunks(self) -> Iterator[tuple[pd.DataFrame, int]]:
        """(chunk, progress so far in rows or bytes)."""
        if self.kind == "parquet":
            done = 0
            for batch in self.file.iter_batches(batch_size=self.chunk_rows):
                done += batch.num_rows
                yield batch.to_pandas(), done
            return
        with self.path.open("rb") as handle:
            # Carried-through columns are kept as text: chunks must agree on their types.
            reader = pd.read_csv(
                handle, chunksize=self.chunk_rows, dtype={name: "str" for name in self.extra}
            )
            for chunk in reader:
                yield chunk, handle.tell()


class _Writer:
    """Appends chunks to a CSV or Parquet file, written aside and moved in place when done."""

    def __init__(self, path: Path) -> None:
        self.path, self.kind = path, table_format(path)
        self.partial = path.with_name(f".{path.name}.partial")
        self.parquet: pq.ParquetWriter | None = None
        self.started = False
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(
                self.partial,
                mode="a" if self.started else "w",
                index=False,
                header=not self.started,
            )
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.partial, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))
        self.started = True

    def close(self, empty: pd.DataFrame) -> None:
        if not self.started:
            self.write(empty)  # an empty file with the right columns, not a missing one
        if self.parquet is not None:
            self.parquet.close()
        self.partial.replace(self.path)


def predict_file(
    model: Classifier,
    threshold: float,
    source: Path,
    output: Path,
    rejected: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    show_progress: bool = True,
) -> BatchResult:
    """Predict every contract-valid row of ``source``; report the others with reasons."""
    rejected = rejected or rejected_path(output)
    reader = _Reader(source, chunk_rows)
    checker = contract()
    missing = [name for name in checker.names if name not in reader.columns]
    if missing:
        raise ValueError(
            f"{source} lacks the contract's columns {missing}; expected every one of "
            f"{checker.names} (schema.py). No row was predicted."
        )
    predictions, refusals = _Writer(output), _Writer(rejected)
    rows = predicted = 0
    run = new_id()  # one per file: row keys stay unique across files
    columns = TextColumn("[progress.description]{task.description}"), BarColumn()
    timing = TimeElapsedColumn(), TimeRemainingColumn()
    with Progress(*columns, *timing, disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"predicting {source.name}", total=reader.total)
        for chunk, done in reader.chunks():
            chunk = chunk.reset_index(drop=True)
            verdict = checker.check_frame(chunk)
            position = pd.RangeIndex(rows, rows + len(chunk))
            carried = chunk[reader.extra].assign(row=position)[["row", *reader.extra]]
            if ID_FIELD not in reader.extra:
                carried.insert(1, ID_FIELD, [f"{run}-{row}" for row in position])
            if verdict.frame.shape[0]:
                scores = model.predict_proba(verdict.frame)[:, 1]
                good = carried[verdict.valid].reset_index(drop=True)
                predictions.write(good.assign(probability=scores, prediction=scores >= threshold))
            bad = carried[~verdict.valid].reset_index(drop=True)
            if len(bad):
                refusals.write(bad.assign(reasons=verdict.reasons))
            rows += len(chunk)
            predicted += int(verdict.valid.sum())
            progress.update(task, completed=done)
    keys = dict.fromkeys([ID_FIELD, *reader.extra])
    empty = pd.DataFrame(
        {"row": pd.Series(dtype="int64"), **{n: pd.Series(dtype="str") for n in keys}}
    )
    no_scores = {"probability": pd.Series(dtype="float64"), "prediction": pd.Series(dtype=bool)}
    predictions.close(empty.assign(**no_scores))
    refusals.close(empty.assign(reasons=pd.Series(dtype="str")))
    return BatchResult(rows, predicted, rows - predicted, output, rejected)
