"""The prediction sampler writing real files, and read_window reading them back."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package }}.contract.validation import FEATURES
from {{ cookiecutter.package }}.serving.sampling import Hooks, Sampler, from_settings
from {{ cookiecutter.package }}.serving.sink import Retention, read_predictions, read_window

START = datetime(2026, 1, 31, 22, 30, tzinfo=UTC)


class Clock:
    """A settable clock, so samples land in known hours."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta).total_seconds()


def as_records(frame: pd.DataFrame) -> list[dict]:
    rows = frame[FEATURES].astype(object).to_dict("records")
    return [{k: None if v != v else v for k, v in row.items()} for row in rows]


def test_kept_samples_read_back_with_their_score_version_and_time(tmp_path, records) -> None:
    clock = Clock(START)
    sampler = Sampler(tmp_path, rate=1.0, flush_seconds=3600, clock=clock)
    rows = as_records(records.head(5))
    assert sampler.record(rows, np.linspace(0.1, 0.5, 5), "7") == 5
    sampler.close()
    files = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.jsonl"))
    assert files == [f"2026-01-31/22-{os.getpid()}.jsonl"]
    window = read_window(tmp_path, START, START + timedelta(minutes=1))
    assert len(window) == 5 and sampler.stats() == {
        "kept": 5,
        "written": 5,
        "dropped": {"queue_full": 0, "write_failed": 0, "bad_value": 0},
    }
    pd.testing.assert_frame_equal(
        window[FEATURES], records.head(5)[FEATURES].reset_index(drop=True), check_dtype=False
    )
    assert window["score"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert set(window["model_version"]) == {"7"}
    assert (window["timestamp"] == pd.Timestamp(START)).all()


def test_window_bounds_cross_hours_and_days(tmp_path, records) -> None:
    clock = Clock(START)
    sampler = Sampler(tmp_path, rate=1.0, flush_seconds=3600, clock=clock)
    row = as_records(records.head(1))
    for _ in range(6):  # 22:30, 23:30, 00:30 (next day), 01:30, 02:30, 03:30
        sampler.record(row, [0.5], "1")
        clock.advance(hours=1)
    sampler.close()
    assert len(list(tmp_path.glob("2026-02-01/*.jsonl"))) == 4
    window = read_window(tmp_path, START + timedelta(hours=1), START + timedelta(hours=3))
    assert window["timestamp"].tolist() == [
        pd.Timestamp(START + timedelta(hours=1)),
        pd.Timestamp(START + timedelta(hours=2)),
    ]  # until is exclusive
    naive = read_window(tmp_path, datetime(2026, 2, 1), datetime(2026, 2, 2))
    assert len(naive) == 4  # naive datetimes are UTC
    assert read_window(tmp_path / "nothing-yet", START, START + timedelta(days=1)).empty


def test_rate_keeps_about_that_fraction(tmp_path, records) -> None:
    sampler = Sampler(tmp_path, rate=0.2, flush_seconds=3600, seed=1, max_buffer=100_000)
    rows = as_records(records.head(1)) * 10_000
    kept = sampler.record(rows, np.full(10_000, 0.5), "1")
    sampler.close()
    # Binomial(10000, 0.2): sd 40, so 5 sd either side.
    assert 1_800 <= kept <= 2_200
    assert len(read_window(tmp_path, datetime(2000, 1, 1), datetime(2100, 1, 1))) == kept
    assert Sampler(tmp_path / "off", rate=0.0).record(rows, np.zeros(10_000), "1") == 0
    assert not (tmp_path / "off").exists()


def test_full_buffer_drops_and_counts_instead_of_waiting(tmp_path, records) -> None:
    drops: list[tuple[str, int]] = []
    drawn: list[int] = []
    hooks = Hooks(drawn=drawn.append, dropped=lambda *drop: drops.append(drop))
    sampler = Sampler(tmp_path, rate=1.0, max_buffer=5, flush_seconds=3600, hooks=hooks)
    rows = as_records(records.head(8))
    assert sampler.record(rows, np.full(8, 0.5), "1") == 5
    assert sampler.record(rows[:2], [0.5, 0.5], "1") == 0
    assert drops == [("queue_full", 3), ("queue_full", 2)] and sampler.lost["queue_full"] == 5
    assert drawn == [8, 2]
    sampler.close()
    assert sampler.written == 5


def test_a_failing_sink_is_counted_and_never_raises(tmp_path, records) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    drops: list[tuple[str, int]] = []
    sampler = Sampler(
        blocked, rate=1.0, flush_seconds=3600, hooks=Hooks(dropped=lambda *d: drops.append(d))
    )
    sampler.record(as_records(records.head(3)), [0.1, 0.2, 0.3], "1")
    assert sampler.flush() == 0
    assert sampler.lost["write_failed"] == 3 and sampler.written == 0
    assert drops == [("write_failed", 3)]  # a failed write is a lost sample, counted as one
    sampler.close()


def test_writer_thread_flushes_once_enough_rows_wait(tmp_path, records) -> None:
    sampler = Sampler(tmp_path, rate=1.0, flush_rows=4, flush_seconds=3600)
    sampler.record(as_records(records.head(4)), np.full(4, 0.5), "1")
    deadline = time.monotonic() + 30
    while sampler.written < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sampler.written == 4  # written by the thread: the hourly timer never fired
    sampler.close()


def test_concurrent_callers_lose_nothing_and_write_whole_lines(tmp_path, records) -> None:
    sampler = Sampler(tmp_path, rate=1.0, flush_rows=50, flush_seconds=0.01, max_buffer=100_000)
    rows = as_records(records.head(10))

    def call() -> None:
        for _ in range(50):
            sampler.record(rows, np.full(10, 0.5), "1")

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sampler.close()
    lines = [line for path in tmp_path.rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == 8 * 50 * 10 == sampler.written
    assert all(json.loads(line)["record"].keys() == rows[0].keys() for line in lines)


def test_missing_values_and_numpy_scalars_are_valid_json(tmp_path, records) -> None:
    sampler = Sampler(tmp_path, rate=1.0, flush_seconds=3600)
    missing, count = FEATURES[0], FEATURES[-1]  # any two fields: the sampler keeps values as-is
    record = {**as_records(records.head(1))[0], missing: float("nan"), count: np.int64(3)}
    sampler.record([record], np.array([0.25]), "1")
    sampler.close()
    line = next(Path(tmp_path).rglob("*.jsonl")).read_text()
    stored = json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert stored["record"][missing] is None and stored["record"][count] == 3


def test_a_torn_last_line_is_skipped(tmp_path, records) -> None:
    sampler = Sampler(tmp_path, rate=1.0, flush_seconds=3600, clock=Clock(START))
    sampler.record(as_records(records.head(2)), [0.1, 0.2], "1")
    sampler.close()
    path = next(tmp_path.rglob("*.jsonl"))
    with path.open("a") as handle:
        handle.write('{"timestamp": "2026-01-31T22:3')  # a worker killed mid-write
    assert len(read_window(tmp_path, START, START + timedelta(hours=1))) == 2


def test_ids_are_kept_with_each_sample_and_read_back_by_both_readers(tmp_path, records) -> None:
    clock = Clock(START)
    sampler = Sampler(tmp_path, rate=1.0, flush_seconds=3600, clock=clock)
    rows = as_records(records.head(4))
    sampler.record(rows[:3], [0.1, 0.2, 0.3], "7", ["a", "b-0", "b-1"])
    clock.advance(hours=1)
    sampler.record(rows[3:], [0.4], "8")  # a caller without ids (samples from before them)
    sampler.close()
    window = read_window(tmp_path, START, START + timedelta(hours=2))
    assert window["request_id"].tolist() == ["a", "b-0", "b-1", None]
    path = next(tmp_path.rglob("22-*.jsonl"))
    with path.open("a") as handle:
        handle.write('{"timestamp": "2026-01-31T22:3')  # a torn line: read line by line instead
    found = read_predictions(tmp_path, START, START + timedelta(hours=2))
    assert list(found.columns) == ["request_id", "timestamp", "score", "model_version"]
    assert found["request_id"].tolist()[:3] == ["a", "b-0", "b-1"]
    assert found["request_id"].isna().tolist() == [False, False, False, True]
    assert found["score"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert found["model_version"].tolist() == ["7", "7", "7", "8"]
    assert (found["timestamp"] == window["timestamp"]).all()
    assert (
        read_predictions(tmp_path, START + timedelta(hours=1), START + timedelta(hours=2))[
            "request_id"
        ]
        .isna()
        .all()
    )


def test_rate_outside_zero_one_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"monitoring\.sample_rate"):
        Sampler(tmp_path, rate=1.5)


def test_service_settings_come_from_the_environment_then_params(
    tmp_path, monkeypatch, settings
) -> None:
    names = ["RATE", "SINK", "MAX_AGE_HOURS", "MAX_MEGABYTES"]
    for name in names:
        monkeypatch.delenv(f"SERVE_SAMPLE_{name}", raising=False)
    monkeypatch.chdir(tmp_path)  # no params.yaml here: a bento served away from the project
    assert from_settings().rate == 0
    monkeypatch.setenv("SERVE_SAMPLE_RATE", "0.5")
    with pytest.raises(ValueError, match="SERVE_SAMPLE_SINK"):
        from_settings()
    monkeypatch.setenv("SERVE_SAMPLE_SINK", str(tmp_path / "samples"))
    sampler = from_settings()
    assert (sampler.rate, sampler.sink) == (0.5, str(tmp_path / "samples"))
    assert sampler.retention is None  # and the log says so
    sampler.close()
    monkeypatch.setenv("SERVE_SAMPLE_MAX_AGE_HOURS", "48")
    monkeypatch.setenv("SERVE_SAMPLE_MAX_MEGABYTES", "2.5")
    sampler = from_settings()
    assert sampler.retention == Retention(max_age_hours=48, max_megabytes=2.5)
    sampler.close()
    monkeypatch.setenv("SERVE_SAMPLE_MAX_MEGABYTES", "0")
    with pytest.raises(ValueError, match="SERVE_SAMPLE_MAX_MEGABYTES='0' is not a number above 0"):
        from_settings()
    monkeypatch.setenv("SERVE_SAMPLE_RATE", "lots")
    with pytest.raises(ValueError, match="SERVE_SAMPLE_RATE='lots'"):
        from_settings()
    for name in names:
        monkeypatch.delenv(f"SERVE_SAMPLE_{name}")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the project: params.yaml decides
    sampler = from_settings()
    monitoring = settings.monitoring
    assert (sampler.rate, sampler.sink) == (monitoring.sample_rate, monitoring.sink)
    assert sampler.retention == Retention(**monitoring.retention.model_dump())
    sampler.close()
