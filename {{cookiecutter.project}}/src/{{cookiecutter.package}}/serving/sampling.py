"""Keep a sample of served predictions where `monitor` and `feedback` can read them back.

The service calls ``Sampler.record(records, scores, version, ids)`` after scoring. That call only
draws which rows to keep and appends references to a bounded in-memory queue under a lock; a
background thread serialises and writes them every ``flush_seconds`` (or sooner when
``flush_rows`` wait). Nothing on the request path waits for the sink, and nothing the sink does
reaches a request:

- the queue full (a sink slower than the traffic, or one that hangs): new samples are dropped;
- a write that raises (a full disk, a read-only directory, an unreachable bucket): its samples
  are dropped and the writer carries on; the next flush tries again, so writing resumes by
  itself when the sink recovers;
- a sample holding a value JSON cannot (an object from a batch caller): dropped.

Every lost sample is counted by reason (``DROP_REASONS``, the service's
``model_samples_dropped_total{reason}``), and each reason is logged once when samples start to
go and once when writing works again, never once per request.

Samples go to hour files, one per worker process (serving/sink.py: the layout, the format,
the readers and the retention that bounds a local sink). A flush is one ``write`` of whole lines
to a file opened for appending, so workers never interleave, a crashed worker loses at most its
unflushed queue, and a reader sees only whole lines. Parquet parts would need one file per flush.

Scale-out: give ``sink`` an fsspec URL (``s3://bucket/samples``, ``gs://...``, ``az://...``,
with s3fs / gcsfs / adlfs installed). Object stores cannot append, so each flush there writes
its own object.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from {{ cookiecutter.package }}.serving.sink import (
    Retention,
    append_lines,
    hour_file,
    is_url,
    prune,
    sample_line,
)

log = logging.getLogger(__name__)

# Why a sample was lost; the first two are the sink's, and clear once a write works again.
QUEUE_FULL, WRITE_FAILED, BAD_VALUE = "queue_full", "write_failed", "bad_value"
DROP_REASONS = (QUEUE_FULL, WRITE_FAILED, BAD_VALUE)
PRUNE_SECONDS = 60.0  # retention runs at most this often per worker (a listing of the sink)
CLOSE_SECONDS = 10.0  # how long shutdown waits for the writer before giving its queue up


def _ignore(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """What the sampler tells the service's metrics (serving/service.py), with counts, never
    once per sample: ``drawn`` (samples drawn, kept or not; on the request path), ``dropped``
    (reason, samples lost) and ``written`` (the time of a successful write)."""

    drawn: Callable[[int], Any] = _ignore
    dropped: Callable[[str, int], Any] = _ignore
    written: Callable[[float], Any] = _ignore


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
        hooks: Hooks | None = None,
        retention: Retention | None = None,
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
        self.hooks = hooks or Hooks()
        self.retention = None if is_url(self.sink) else retention  # buckets: a lifecycle rule
        self.clock = clock
        self.random = np.random.default_rng(seed)
        self.buffer: list[tuple[float, str, float, Mapping[str, Any], str | None]] = []
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.kept = self.written = 0
        self.lost = dict.fromkeys(DROP_REASONS, 0)
        # Per reason logged and not yet cleared: samples lost since, now and after the last flush.
        self.failing: dict[str, int] = {}
        self.failing_before: dict[str, int] = {}
        self.parts = 0  # objects written to an object store by this process
        self.hour_parts: dict[datetime, int] = {}  # the part of each recent hour being written
        self.pruned_at = float("-inf")
        # Bytes this worker may write before the sink could pass its size limit, as of the last
        # listing (None: not known, list before the next write).
        self.room: int | None = None
        self.thread: threading.Thread | None = None
        if rate > 0:
            self.hooks.written(self.clock())  # fresh as of the start: the stale alert's clock
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
            self.kept += len(kept)
            full = len(self.buffer) >= self.flush_rows
        if full:
            self.wake.set()
        if len(chosen):
            self.hooks.drawn(len(chosen))
        if len(chosen) > len(kept):
            self._lose(
                QUEUE_FULL,
                len(chosen) - len(kept),
                f"the queue of {self.max_buffer} samples is full: {self.sink} is slower than the "
                "traffic, or hangs",
            )
        return len(kept)

    def _lose(self, reason: str, count: int, why: str) -> None:
        """Count ``count`` lost samples; the first loss of a reason is logged, with why."""
        with self.lock:
            self.lost[reason] += count
            first = reason not in self.failing
            self.failing[reason] = self.failing.get(reason, 0) + count
        self.hooks.dropped(reason, count)
        if first:
            log.warning(
                "prediction samples are being dropped (%s): %s. Counted in "
                'model_samples_dropped_total{reason="%s"}; logged again when writing works',
                reason,
                why,
                reason,
            )

    def _settle(self, wrote: bool) -> None:
        """At the end of a flush: when it wrote, clear each sink reason that lost nothing since
        the flush before (saying how much it lost in all); remember the losses so far."""
        with self.lock:
            cleared = {
                reason: lost
                for reason, lost in self.failing.items()
                if wrote and reason != BAD_VALUE and self.failing_before.get(reason) == lost
            }
            for reason in cleared:
                del self.failing[reason]
            self.failing_before = dict(self.failing)
        if cleared:
            lost = ", ".join(f"{count} ({reason})" for reason, count in cleared.items())
            log.warning(
                "writing prediction samples to %s again; lost meanwhile: %s", self.sink, lost
            )

    def flush(self) -> int:
        """Write what the queue holds; returns the rows written. Never raises."""
        with self.writing:  # one flush at a time: the writer thread, close() or a test
            return self._flush()

    def _flush(self) -> int:
        with self.lock:
            rows, self.buffer = self.buffer, []
        by_hour: dict[datetime, list[str]] = {}
        for stamp, version, score, record, request_id in rows:
            try:
                line = sample_line(stamp, version, score, record, request_id)
            except (TypeError, ValueError) as error:
                self._lose(BAD_VALUE, 1, f"a sample is not valid JSON: {error}")
                continue
            hour = datetime.fromtimestamp(stamp, UTC).replace(minute=0, second=0, microsecond=0)
            by_hour.setdefault(hour, []).append(line)
        written = 0
        for hour, lines in by_hour.items():
            try:
                self._write(hour, "".join(f"{line}\n" for line in lines))
            except Exception as error:  # a full disk or a lost bucket must not stop serving
                self._lose(WRITE_FAILED, len(lines), f"writing to {self.sink} failed: {error}")
            else:
                written += len(lines)
        if written:
            self.written += written
            self.hooks.written(self.clock())
        self._settle(wrote=written > 0)
        self._prune_when_due()
        return written

    def _write(self, hour: datetime, text: str) -> None:
        if not is_url(self.sink):
            data = text.encode()
            self._make_room(len(data))
            path = self._part(hour)
            path.parent.mkdir(parents=True, exist_ok=True)
            append_lines(path, data)
            return
        import fsspec

        self.parts += 1
        with fsspec.open(hour_file(self.sink, hour, self.parts), "w") as handle:
            handle.write(text)

    def _part(self, hour: datetime) -> Path:
        """This worker's file for ``hour``: the next part once the current one holds
        ``retention.part_bytes`` (so retention can delete the oldest samples in slices)."""
        part = self.hour_parts.get(hour, 0)
        path = Path(hour_file(self.sink, hour, part))
        while self.retention is not None:
            try:
                if path.stat().st_size < self.retention.part_bytes:
                    break
            except FileNotFoundError:  # new, or deleted by retention: (re)started here
                break
            part += 1
            path = Path(hour_file(self.sink, hour, part))
        recent = {h: p for h, p in self.hour_parts.items() if h >= hour - timedelta(hours=1)}
        self.hour_parts = recent | {hour: part}
        return path

    def _make_room(self, size: int) -> None:
        """Keep the sink within its size limit between the minutely listings: count what this
        worker writes, and list (and prune) again before a write could pass the limit."""
        if self.retention is None:
            return
        if self.room is not None and size <= self.room:
            self.room -= size
        elif self.room is not None or self.clock() - self.pruned_at >= PRUNE_SECONDS:
            self._prune(self.retention, incoming=size)

    def _prune_when_due(self) -> None:
        if self.retention is not None and self.clock() - self.pruned_at >= PRUNE_SECONDS:
            self._prune(self.retention)

    def _prune(self, retention: Retention, incoming: int = 0) -> None:
        self.pruned_at = now = self.clock()
        self.room = None
        try:
            pruned = prune(self.sink, retention, datetime.fromtimestamp(now, UTC), incoming)
        except OSError as error:  # retention must never stop the writing
            log.warning("retention of %s failed, trying again in a minute: %s", self.sink, error)
            return
        self.room = max(retention.max_bytes - pruned.kept_bytes - incoming, 0)
        if pruned.deleted:
            log.info(
                "retention deleted %d sample files (%.1f MB) from %s; it holds %.1f MB",
                pruned.deleted,
                pruned.freed_bytes / 1e6,
                self.sink,
                pruned.kept_bytes / 1e6,
            )

    def _loop(self) -> None:
        while not self.stopped.is_set():
            self.wake.wait(self.flush_seconds)
            self.wake.clear()
            try:
                self.flush()
            except Exception:  # a bug here must not end the writer: later samples still count
                log.exception("the sample writer failed; it carries on")

    def close(self) -> None:
        """Stop the writer thread and write what is left (also run at interpreter exit). A sink
        that hangs holds shutdown for at most ``CLOSE_SECONDS``; what it kept is counted lost."""
        self.stopped.set()
        self.wake.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=CLOSE_SECONDS)
        if self.writing.acquire(timeout=CLOSE_SECONDS):
            try:
                self._flush()
            finally:
                self.writing.release()
            return
        with self.lock:
            left, self.buffer = len(self.buffer), []
        if left:
            self._lose(WRITE_FAILED, left, f"{self.sink} did not answer before shutdown")

    def stats(self) -> dict[str, Any]:
        return {"kept": self.kept, "written": self.written, "dropped": dict(self.lost)}


RATE_ENV, SINK_ENV = "SERVE_SAMPLE_RATE", "SERVE_SAMPLE_SINK"
MAX_AGE_ENV, MAX_SIZE_ENV = "SERVE_SAMPLE_MAX_AGE_HOURS", "SERVE_SAMPLE_MAX_MEGABYTES"


def sink_of(sink: str) -> str:
    """Where samples are: ``SERVE_SAMPLE_SINK`` when set (a deployment: the service and its
    monitor share it), else ``sink`` (params.yaml ``monitoring.sink``)."""
    return os.environ.get(SINK_ENV) or sink


def _number(name: str, value: Any, upper: float | None = None) -> float:
    """``value`` (from the environment variable ``name``) as a number: 0..``upper`` for a rate,
    above 0 otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    fits = 0.0 <= number <= upper if upper is not None else number > 0
    if not fits:
        allowed = f"between 0 and {upper:g}" if upper is not None else "above 0"
        raise ValueError(f"{name}={value!r} is not a number {allowed}")
    return number


def from_settings(hooks: Hooks | None = None) -> Sampler:
    """The service's sampler: ``SERVE_SAMPLE_RATE`` / ``_SINK`` / ``_MAX_AGE_HOURS`` /
    ``_MAX_MEGABYTES`` when set (a deployment, a bento served away from the project), else
    params.yaml ``monitoring`` when serving from the project root; else sampling is off and a
    local sink has no retention (the log says so)."""
    from {{ cookiecutter.package }}.config import PARAMS_FILE, load_settings

    names = (RATE_ENV, SINK_ENV, MAX_AGE_ENV, MAX_SIZE_ENV)
    values: dict[str, Any] = {name: os.environ.get(name) for name in names}
    if None in values.values() and PARAMS_FILE.exists():
        monitoring = load_settings().monitoring
        kept = monitoring.retention
        defaults = (monitoring.sample_rate, monitoring.sink, kept.max_age_hours, kept.max_megabytes)
        values = {
            name: default if values[name] is None else values[name]
            for name, default in zip(names, defaults, strict=True)
        }
    rate = _number(RATE_ENV, values[RATE_ENV] or 0, upper=1)
    sink = values[SINK_ENV]
    if rate and not sink:
        raise ValueError(f"{RATE_ENV} is {rate} but no sink is set: set {SINK_ENV}")
    retention = None
    if values[MAX_AGE_ENV] is not None and values[MAX_SIZE_ENV] is not None:
        age, size = (_number(name, values[name]) for name in (MAX_AGE_ENV, MAX_SIZE_ENV))
        retention = Retention(max_age_hours=age, max_megabytes=size)
    if not rate:
        log.info("sampling of predictions is off")
    elif retention is not None or is_url(sink):
        kept = "a bucket lifecycle rule" if is_url(sink) else f"{retention}"
        log.info("sampling %.0f%% of predictions to %s, kept by %s", 100 * rate, sink, kept)
    else:
        log.warning(
            "sampling %.0f%% of predictions to %s with no retention: set %s and %s",
            100 * rate,
            sink,
            MAX_AGE_ENV,
            MAX_SIZE_ENV,
        )
    return Sampler(sink or ".", rate, hooks=hooks, retention=retention)
