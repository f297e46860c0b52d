"""Where prediction samples lie, how long they stay, and reading them back.

Layout of a sink (UTC time; serving/sampling.py writes it)::

    <sink>/<YYYY-MM-DD>/<HH>-<pid>.jsonl          an hour of one worker process
    <sink>/<YYYY-MM-DD>/<HH>-<pid>-<n>.jsonl      its further parts; each object on a bucket

One JSON object per line (``sample_line``)::

    {"timestamp": "2026-01-31T12:00:00.123+00:00", "model_version": "3", "score": 0.41,
     "request_id": "9f2c...", "record": {<the request's contract fields>}}

``read_window`` reads whole samples back, ``read_predictions`` only their id, time, score and
version (what `feedback` joins labels to); both read every layout and skip a torn line.

Retention bounds a local sink (params.yaml ``monitoring.retention``): an hour that ended
``max_age_hours`` ago is deleted, and while the sink holds more than ``max_megabytes`` its
oldest files go first (the writer makes room before a write that would pass the limit). A
worker starts its hour's next part once a part holds 1/``PARTS_PER_LIMIT`` of the size limit,
so the size limit deletes the oldest samples in thin slices, never a whole hour still being
written. Buckets keep no such books: a lifecycle rule
expires old objects there (README.md, Monitoring, shows it for S3, GCS and Azure).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.serving.ids import ID_FIELD

# A sample's fields; read_window adds them next to the record's own.
TIMESTAMP, SCORE, VERSION = "timestamp", "score", "model_version"
HOUR_FILE = re.compile(r"([01]\d|2[0-3])-\d+(-\d+)?\.jsonl$")
# A part rolls over at this fraction of the size limit: the size limit then deletes at most
# about 1/64 of what the sink holds at a time.
PARTS_PER_LIMIT = 64
MEGABYTE = 1_000_000


def is_url(sink: str | Path) -> bool:
    return "://" in str(sink)


def hour_file(sink: str, moment: datetime, part: int = 0) -> str:
    """This process's file for ``moment``'s hour; ``part`` > 0 names a further part."""
    suffix = f"-{part}" if part else ""
    return f"{sink.rstrip('/')}/{moment:%Y-%m-%d}/{moment:%H}-{os.getpid()}{suffix}.jsonl"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):  # numpy scalars from batch callers
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a sample")


def _without_nan(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: None if value != value else value for key, value in record.items()}


def sample_line(
    stamp: float, version: str, score: float, record: Mapping[str, Any], request_id: str | None
) -> str:
    row = {
        TIMESTAMP: datetime.fromtimestamp(stamp, UTC).isoformat(),
        VERSION: version,
        SCORE: score,
        ID_FIELD: request_id,
        "record": record,
    }
    try:
        return json.dumps(row, default=_jsonable, allow_nan=False)
    except ValueError:  # NaN from a batch caller: JSON has null for a missing value
        row["record"] = _without_nan(record)
        return json.dumps(row, default=_jsonable, allow_nan=False)


def append_lines(path: Path, data: bytes) -> None:
    """Append ``data`` (whole lines) to ``path``. A write the disk cuts short is cut back to the
    file's length before it, so the next write never starts in the middle of a line."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(handle).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(handle, start)
            raise
    finally:
        os.close(handle)


@dataclass(frozen=True)
class SampleFile:
    path: Path
    hour: datetime  # the start of the hour its samples belong to (UTC)
    size: int
    modified: float


def sample_files(sink: str | Path) -> list[SampleFile]:
    """Every sample file of a local sink, oldest first (by hour, then by last write)."""
    found = []
    root = Path(sink)
    try:
        folders = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for folder in folders:
        try:
            day = datetime.strptime(folder.name, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            continue  # not a day folder: not ours to count or delete
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.scandir(folder.path):
                named = HOUR_FILE.match(entry.name)
                if named is None:
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # deleted meanwhile (another worker's retention)
                    continue
                hour = day.replace(hour=int(named[1]))
                found.append(SampleFile(Path(entry.path), hour, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda file: (file.hour, file.modified, file.path.name))


@dataclass(frozen=True)
class Retention:
    """How long, and how much, a local sink keeps (params.yaml ``monitoring.retention``)."""

    max_age_hours: float
    max_megabytes: float

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * MEGABYTE)

    @property
    def part_bytes(self) -> int:
        return max(self.max_bytes // PARTS_PER_LIMIT, 1)

    def expired(
        self, files: list[SampleFile], now: datetime, incoming: int = 0
    ) -> list[SampleFile]:
        """Of ``files`` (oldest first, as ``sample_files`` lists them) those to delete: each
        hour that ended ``max_age_hours`` or more before ``now``, then the oldest of the rest
        while they and the ``incoming`` bytes about to be written hold more than the size
        limit."""
        cutoff = now - timedelta(hours=self.max_age_hours)
        old = [file for file in files if file.hour + timedelta(hours=1) <= cutoff]
        kept = files[len(old) :]  # sorted by hour: the expired hours come first
        excess = sum(file.size for file in kept) + incoming - self.max_bytes
        too_many = []
        for file in kept:
            if excess <= 0:
                break
            too_many.append(file)
            excess -= file.size
        return old + too_many


@dataclass(frozen=True)
class Pruned:
    deleted: int
    freed_bytes: int
    kept_bytes: int


def prune(sink: str | Path, retention: Retention, now: datetime, incoming: int = 0) -> Pruned:
    """Delete what ``retention`` no longer keeps from a local sink (leaving room for
    ``incoming`` bytes), and day folders left empty.

    Safe beside other workers pruning the same sink: a file another one deleted first is skipped,
    and a worker whose current part was deleted starts it again at its next write."""
    files = sample_files(sink)
    doomed = retention.expired(files, now, incoming)
    freed = 0
    for file in doomed:
        with contextlib.suppress(FileNotFoundError):
            file.path.unlink()
            freed += file.size
    today = f"{now:%Y-%m-%d}"
    for folder in {file.path.parent for file in doomed if file.path.parent.name != today}:
        with contextlib.suppress(OSError):  # not empty: another worker's part is still there
            folder.rmdir()
    total = sum(file.size for file in files)
    return Pruned(len(doomed), freed, total - sum(file.size for file in doomed))


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _files(sink: str, since: datetime, until: datetime) -> Iterator[tuple[Any, str]]:
    """(filesystem, path) of every sample file whose hour overlaps [since, until]."""
    import fsspec.core

    fs, root = fsspec.core.url_to_fs(sink)
    root = root.rstrip("/")
    first = since.replace(minute=0, second=0, microsecond=0)
    # The day folders that exist, listed once: a window of months is one listing, not one per
    # day (each a request on a remote sink).
    try:
        folders = fs.ls(root, detail=False)
    except FileNotFoundError:
        return
    days = []
    for folder in folders:
        try:
            day = datetime.strptime(folder.rstrip("/").rsplit("/", 1)[-1], "%Y-%m-%d")
        except ValueError:
            continue  # not a day folder
        if first.date() <= day.date() <= until.date():
            days.append(day.replace(tzinfo=UTC))
    for day in sorted(days):
        for path in sorted(fs.glob(f"{root}/{day:%Y-%m-%d}/*.jsonl")):
            named = HOUR_FILE.match(path.rsplit("/", 1)[-1])
            if named and first <= day.replace(hour=int(named[1])) <= until:
                yield fs, path


def read_window(sink: str | Path, since: datetime, until: datetime) -> pd.DataFrame:
    """Samples with ``since <= timestamp < until``: the record's fields as columns, plus
    ``timestamp`` (UTC), ``score``, ``model_version`` and ``request_id`` (None in samples
    written before ids existed). Naive datetimes are read as UTC."""
    since, until = _as_utc(since), _as_utc(until)
    stamps, versions, scores, records, ids = [], [], [], [], []
    for fs, path in _files(str(sink), since, until):
        with fs.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except ValueError:  # a line still being written, or cut by a crash
                    continue
                stamps.append(row[TIMESTAMP])
                versions.append(row[VERSION])
                scores.append(row[SCORE])
                ids.append(row.get(ID_FIELD))
                records.append(row["record"])
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame[TIMESTAMP] = pd.to_datetime(pd.Series(stamps, dtype="object"), utc=True, format="ISO8601")
    frame[SCORE] = pd.Series(scores, dtype="float64")
    frame[VERSION] = pd.Series(versions, dtype="object")
    frame[ID_FIELD] = pd.Series(ids, dtype="object")
    inside = (frame[TIMESTAMP] >= since) & (frame[TIMESTAMP] < until)
    return frame[inside].sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def read_predictions(sink: str | Path, since: datetime, until: datetime) -> pd.DataFrame:
    """The id, time, score and model version of the samples with ``since <= timestamp < until``
    (what `feedback` joins labels to), without parsing their records.

    Arrow's JSON reader parses each file in one call and skips the ``record`` field, several
    times faster than ``read_window`` and a fraction of its memory; a file it cannot parse (a
    line cut by a crash) is read line by line instead, skipping the broken line.
    """
    import pyarrow as pa

    since, until = _as_utc(since), _as_utc(until)
    tables = [_prediction_table(fs, path) for fs, path in _files(str(sink), since, until)]
    table = pa.concat_tables(tables) if tables else _prediction_schema().empty_table()
    frame = table.to_pandas()
    inside = (frame[TIMESTAMP] >= since) & (frame[TIMESTAMP] < until)
    return frame[inside].reset_index(drop=True)


def _prediction_schema() -> Any:
    import pyarrow as pa  # imported when first needed: the service itself never reads

    return pa.schema(
        [
            (ID_FIELD, pa.string()),
            (TIMESTAMP, pa.timestamp("us", tz="UTC")),
            (SCORE, pa.float64()),
            (VERSION, pa.string()),
        ]
    )


def _prediction_table(fs: Any, path: str) -> Any:
    import io

    import pyarrow as pa
    import pyarrow.json as pj

    with fs.open(path, "rb") as handle:
        data = handle.read()
    schema = _prediction_schema()
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        return pj.read_json(io.BytesIO(data), parse_options=options).select(schema.names)
    except pa.ArrowInvalid:  # a broken line: parse the good ones one by one
        rows = []
        for line in data.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            rows.append({name: row.get(name) for name in schema.names})
        frame = pd.DataFrame.from_records(rows, columns=schema.names)
        frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True, format="ISO8601")
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
