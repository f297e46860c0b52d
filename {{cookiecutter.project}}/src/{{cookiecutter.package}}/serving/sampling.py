"""Keep a sample of served predictions where `monitor` can read them back.

The service calls ``Sampler.record(records, scores, version)`` after scoring. That call only
draws which rows to keep and appends references to an in-memory buffer under a lock; a
background thread serialises and writes them every ``flush_seconds`` (or sooner when
``flush_rows`` wait). When the buffer is full new samples are dropped and counted, so a slow
disk can never slow or fail a request; a failed write is logged and counted, never raised.

Layout of a sink (UTC time)::

    <sink>/<YYYY-MM-DD>/<HH>-<pid>.jsonl       one JSON object per line:
    {"timestamp": "2026-01-31T12:00:00.123+00:00", "model_version": "3", "score": 0.41,
     "request_id": "9f2c...", "record": {<the request's contract fields>}}

``request_id`` (serving/ids.py) is what `feedback` joins labels to; ``read_predictions`` reads
the id, time, score and version of each sample without parsing its record.

JSON Lines because a flush is one ``write`` of whole lines to a file opened for appending, and
the pid in the name gives each BentoML worker process its own file: several workers never
interleave, a crashed worker loses at most its unflushed buffer, and a reader sees only whole
lines (a half-written last line is skipped). Parquet parts would need one file per flush.

Scale-out: give ``sink`` an fsspec URL (``s3://bucket/samples``, ``gs://...``, ``az://...``,
with s3fs / gcsfs / adlfs installed). Object stores cannot append, so each flush there writes
its own object ``<HH>-<pid>-<n>.jsonl``; ``read_window`` reads both layouts.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package }}.serving.ids import ID_FIELD

log = logging.getLogger(__name__)

# Columns read_window adds next to the record's own fields.
TIMESTAMP, SCORE, VERSION = "timestamp", "score", "model_version"
HOUR_FILE = re.compile(r"([01]\d|2[0-3])-\d+(-\d+)?\.jsonl$")


def _is_url(sink: str | Path) -> bool:
    return "://" in str(sink)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):  # numpy scalars from batch callers
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a sample")


def _without_nan(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: None if value != value else value for key, value in record.items()}


def _line(
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


def _hour_file(sink: str, moment: datetime, suffix: str) -> str:
    return f"{sink.rstrip('/')}/{moment:%Y-%m-%d}/{moment:%H}-{os.getpid()}{suffix}.jsonl"


class Sampler:
    """Thread-safe, non-blocking sampling of (record, score, model version, time) to a sink."""

    def __init__(
        self,
        sink: str | Path,
        rate: float,
        *,
        max_buffer: int = 10_000,
        flush_rows: int = 1_000,
        flush_seconds: float = 5.0,
        on_drop: Callable[[int], Any] | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample rate {rate} is not between 0 and 1 (monitoring.sample_rate)")
        self.sink = str(sink)
        self.rate = rate
        self.max_buffer = max_buffer
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop
        self.clock = clock
        self.random = np.random.default_rng(seed)
        self.buffer: list[tuple[float, str, float, Mapping[str, Any], str | None]] = []
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.kept = self.dropped = self.written = self.failed = 0
        self.parts = 0  # objects written to an object store by this process
        self.thread: threading.Thread | None = None
        if rate > 0:
            self.thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
            self.thread.start()
            atexit.register(self.close)

    def record(
        self,
        records: Sequence[Mapping[str, Any]],
        scores: Sequence[float],
        version: str,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Keep each (record, score, id) with probability ``rate``; returns how many were kept."""
        if self.rate == 0 or not len(records):
            return 0
        now = self.clock()
        with self.lock:  # numpy's Generator is not thread-safe either
            if self.rate >= 1:
                chosen = range(len(records))
            else:
                chosen = np.flatnonzero(self.random.random(len(records)) < self.rate)
            room = self.max_buffer - len(self.buffer)
            kept = [
                (now, version, float(scores[i]), records[i], None if ids is None else ids[i])
                for i in chosen[:room]
            ]
            self.buffer.extend(kept)
            dropped = len(chosen) - len(kept)
            self.kept += len(kept)
            self.dropped += dropped
            full = len(self.buffer) >= self.flush_rows
        if full:
            self.wake.set()
        if dropped and self.on_drop is not None:
            self.on_drop(dropped)
        return len(kept)

    def flush(self) -> int:
        """Write what the buffer holds; returns the rows written. Never raises."""
        with self.writing:  # one flush at a time: the writer thread, close() or a test
            return self._flush()

    def _flush(self) -> int:
        with self.lock:
            rows, self.buffer = self.buffer, []
        if not rows:
            return 0
        by_hour: dict[datetime, list[str]] = {}
        for stamp, version, score, record, request_id in rows:
            try:
                line = _line(stamp, version, score, record, request_id)
            except (TypeError, ValueError) as error:
                self.failed += 1
                log.warning("sample not written: %s", error)
                continue
            hour = datetime.fromtimestamp(stamp, UTC).replace(minute=0, second=0, microsecond=0)
            by_hour.setdefault(hour, []).append(line)
        written = 0
        for hour, lines in by_hour.items():
            try:
                self._write(hour, "".join(f"{line}\n" for line in lines))
            except Exception as error:  # a full disk or a lost bucket must not stop serving
                self.failed += len(lines)
                log.warning(
                    "%d samples lost: writing to %s failed: %s", len(lines), self.sink, error
                )
            else:
                written += len(lines)
        self.written += written
        return written

    def _write(self, hour: datetime, text: str) -> None:
        if not _is_url(self.sink):
            path = Path(_hour_file(self.sink, hour, ""))
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:  # O_APPEND: whole lines per write
                handle.write(text)
            return
        import fsspec

        self.parts += 1
        with fsspec.open(_hour_file(self.sink, hour, f"-{self.parts}"), "w") as handle:
            handle.write(text)

    def _loop(self) -> None:
        while not self.stopped.is_set():
            self.wake.wait(self.flush_seconds)
            self.wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the writer thread and write what is left (also run at interpreter exit)."""
        self.stopped.set()
        self.wake.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
        self.flush()

    def stats(self) -> dict[str, int]:
        return {
            "kept": self.kept,
            "dropped": self.dropped,
            "written": self.written,
            "failed": self.failed,
        }


RATE_ENV, SINK_ENV = "SERVE_SAMPLE_RATE", "SERVE_SAMPLE_SINK"


def sink_of(sink: str) -> str:
    """Where samples are: ``SERVE_SAMPLE_SINK`` when set (a deployment: the service and its
    monitor share it), else ``sink`` (params.yaml ``monitoring.sink``)."""
    return os.environ.get(SINK_ENV) or sink


def from_settings(on_drop: Callable[[int], Any] | None = None) -> Sampler:
    """The service's sampler: ``SERVE_SAMPLE_RATE`` / ``SERVE_SAMPLE_SINK`` when set (a
    deployment, a bento served away from the project), else params.yaml ``monitoring`` when
    serving from the project root, else off."""
    from {{ cookiecutter.package }}.config import PARAMS_FILE, load_settings

    rate, sink = os.environ.get(RATE_ENV), os.environ.get(SINK_ENV)
    if (rate is None or sink is None) and PARAMS_FILE.exists():
        monitoring = load_settings().monitoring
        rate = monitoring.sample_rate if rate is None else rate
        sink = monitoring.sink if sink is None else sink
    try:
        value = float(rate) if rate is not None else 0.0
    except ValueError:
        raise ValueError(f"{RATE_ENV}={rate!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{RATE_ENV}={rate!r} is not a number between 0 and 1")
    if value and not sink:
        raise ValueError(f"{RATE_ENV} is {value} but no sink is set: set {SINK_ENV}")
    log.info("sampling %.0f%% of predictions to %s", 100 * value, sink or "nowhere (off)")
    return Sampler(sink or ".", value, on_drop=on_drop)


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
