"""A sink that runs for months: retention on real files under a fake clock, writes the disk
refuses or cuts short, and the settings check that keeps what monitor and feedback read."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from contract_data import as_records

from {{ cookiecutter.package }}.config import ParamsError, parse_settings
from {{ cookiecutter.package }}.serving.sampling import Hooks, Sampler
from {{ cookiecutter.package }}.serving.sink import Retention, prune, read_window, sample_files

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)


def put(sink: Path, name: str, size: int, modified: datetime | None = None) -> Path:
    """A file of ``size`` bytes at ``sink/name``, last written at ``modified``."""
    path = sink / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if modified is not None:
        os.utime(path, (modified.timestamp(), modified.timestamp()))
    return path


def left(sink: Path) -> set[str]:
    return {path.relative_to(sink).as_posix() for path in sink.rglob("*") if path.is_file()}


def test_retention_deletes_exactly_the_hours_past_the_age_limit(tmp_path) -> None:
    expired = ["2026-03-01/23-7.jsonl", "2026-03-02/07-7.jsonl", "2026-03-02/08-7.jsonl"]
    expired += ["2026-03-02/08-9-1.jsonl"]  # another worker's second part of that hour
    kept = ["2026-03-02/09-7.jsonl", "2026-03-02/12-7.jsonl"]
    # Not samples: never counted, never deleted.
    foreign = ["2026-03-02/notes.txt", "archive/2025-01-01/01-1.jsonl", "2026-02-01.jsonl"]
    for name in expired + kept + foreign:
        put(tmp_path, name, 100)
    # 3 hours before 12:30 is 09:30: the 08:00 hour ended before it, the 09:00 hour did not.
    pruned = prune(tmp_path, Retention(max_age_hours=3, max_megabytes=1), NOW)
    assert left(tmp_path) == set(kept + foreign)
    assert (pruned.deleted, pruned.freed_bytes, pruned.kept_bytes) == (4, 400, 200)
    assert not (tmp_path / "2026-03-01").exists()  # an emptied day folder goes too


def test_retention_deletes_the_oldest_files_past_the_size_limit(tmp_path) -> None:
    hour = NOW.replace(minute=0)
    put(tmp_path, "2026-03-01/05-7.jsonl", 1000)  # past the age limit: not part of the size
    put(tmp_path, "2026-03-02/10-7.jsonl", 100, hour - timedelta(minutes=90))
    # Two workers' parts of 11:00: the one written last is the newer, whatever its name.
    put(tmp_path, "2026-03-02/11-100.jsonl", 100, hour - timedelta(minutes=10))
    put(tmp_path, "2026-03-02/11-200.jsonl", 100, hour - timedelta(minutes=50))
    put(tmp_path, "2026-03-02/12-7.jsonl", 100, NOW)
    assert [file.path.name for file in sample_files(tmp_path)] == [
        "05-7.jsonl",
        "10-7.jsonl",
        "11-200.jsonl",
        "11-100.jsonl",
        "12-7.jsonl",
    ]
    retention = Retention(max_age_hours=24, max_megabytes=250 / 1e6)  # 250 bytes
    pruned = prune(tmp_path, retention, NOW)
    assert left(tmp_path) == {"2026-03-02/11-100.jsonl", "2026-03-02/12-7.jsonl"}
    assert (pruned.deleted, pruned.kept_bytes) == (3, 200)
    assert prune(tmp_path, retention, NOW).deleted == 0  # within both limits: nothing more


def test_the_sampler_keeps_its_sink_within_retention_and_the_newest_samples(
    tmp_path, records
) -> None:
    clock = [NOW.timestamp()]
    limit = Retention(max_age_hours=2, max_megabytes=0.02)  # 20 kB: parts of 312 bytes
    sampler = Sampler(
        tmp_path, rate=1.0, flush_seconds=3600, retention=limit, clock=lambda: clock[0]
    )
    rows = as_records(records.head(5))
    for _ in range(30):  # 30 flushes a minute apart: more than the limit holds
        sampler.record(rows, [0.5] * 5, "1")
        sampler.flush()
        assert sum(f.size for f in sample_files(tmp_path)) <= limit.max_bytes
        clock[0] += 61
    files = sample_files(tmp_path)
    assert len(files) > 1 and len({file.hour for file in files}) == 1  # one hour, in parts
    kept = read_window(tmp_path, NOW, NOW + timedelta(hours=1))
    assert 0 < len(kept) < 30 * 5  # the size limit took the oldest parts, and only those
    newest = [NOW + timedelta(seconds=61 * n) for n in range(30)][-len(kept) // 5 :]
    assert kept["timestamp"].drop_duplicates().tolist() == [pd.Timestamp(t) for t in newest]
    clock[0] += 3 * 3600  # three hours on, the next flush's retention drops the old hour
    sampler.record(rows, [0.5] * 5, "1")
    sampler.close()
    assert {file.hour for file in sample_files(tmp_path)} == {
        datetime.fromtimestamp(clock[0], UTC).replace(minute=0, second=0, microsecond=0)
    }


def test_the_size_limit_holds_between_the_minutely_listings(tmp_path, records) -> None:
    """Flushes a second apart, as under load: each write first makes room for itself, so the
    sink never holds more than the limit, not even for the minute until the next listing."""
    clock = [NOW.timestamp()]
    limit = Retention(max_age_hours=2, max_megabytes=0.02)
    sampler = Sampler(
        tmp_path, rate=1.0, flush_seconds=3600, retention=limit, clock=lambda: clock[0]
    )
    rows = as_records(records.head(5))
    for _ in range(120):
        sampler.record(rows, [0.5] * 5, "1")
        assert sampler.flush() == 5
        assert sum(f.size for f in sample_files(tmp_path)) <= limit.max_bytes
        clock[0] += 1
    sampler.close()
    assert len(read_window(tmp_path, NOW, NOW + timedelta(hours=1))) > 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_drops_counts_logs_once_and_recovers(tmp_path, records, caplog) -> None:
    """The hour file is /dev/full, on which every write fails with the kernel's ENOSPC."""
    drops: list[tuple[str, int]] = []
    written: list[float] = []
    hooks = Hooks(dropped=lambda *drop: drops.append(drop), written=written.append)
    sampler = Sampler(
        tmp_path, rate=1.0, flush_seconds=3600, hooks=hooks, clock=lambda: NOW.timestamp()
    )
    hour_file = tmp_path / f"{NOW:%Y-%m-%d}/{NOW:%H}-{os.getpid()}.jsonl"
    hour_file.parent.mkdir()
    hour_file.symlink_to("/dev/full")
    rows = as_records(records.head(5))
    with caplog.at_level(logging.WARNING):
        for count in (3, 2):
            sampler.record(rows[:count], [0.5] * count, "1")
            assert sampler.flush() == 0
        hour_file.unlink()  # the disk has room again
        sampler.record(rows[:4], [0.5] * 4, "1")
        assert sampler.flush() == 4
    sampler.close()
    assert drops == [("write_failed", 3), ("write_failed", 2)]
    assert len(written) == 2  # at the start, and after the write that worked
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2, said  # once when it began, once when it ended
    assert "write_failed" in said[0] and os.strerror(errno.ENOSPC) in said[0]
    assert "again" in said[1] and "5 (write_failed)" in said[1]
    assert len(read_window(tmp_path, NOW, NOW + timedelta(hours=1))) == 4


def test_a_write_the_disk_cuts_short_leaves_only_whole_lines(tmp_path) -> None:
    """A file size limit (RLIMIT_FSIZE) makes the kernel take part of a write, then refuse the
    rest, as a filling disk does; the file is cut back to its last whole line."""
    script = """
import errno, resource, signal, sys
from pathlib import Path
from {{ cookiecutter.package }}.serving.sink import append_lines

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = Path(sys.argv[1])
append_lines(path, b'{"a": 1}\\n')
resource.setrlimit(resource.RLIMIT_FSIZE, (20, 20))
try:
    append_lines(path, b'{"b": 2}\\n' * 3)
except OSError as error:
    print(errno.errorcode[error.errno])
"""
    path = tmp_path / "12-1.jsonl"
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env
    )
    assert done.stdout.strip() == "EFBIG", done.stderr
    assert path.read_bytes() == b'{"a": 1}\n'  # not '{"a": 1}\n{"b": 2}\n{"b"'


def params(**retention: float) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["monitoring"]["retention"] |= retention
    return raw


def test_settings_reject_a_window_longer_than_retention() -> None:
    raw = params()
    delay = raw["monitoring"]["quality"]["label_delay_hours"]
    parse_settings(params(max_age_hours=max(2 * delay, raw["monitoring"]["window_hours"])))
    with pytest.raises(ParamsError) as caught:
        parse_settings(params(max_age_hours=2 * delay - 1))
    [line] = str(caught.value).splitlines()
    assert line.startswith(f"params.yaml: monitoring.retention.max_age_hours is {2 * delay - 1}:")
    assert "monitoring.quality.label_delay_hours" in line
    longer = params(max_age_hours=2 * delay)
    longer["monitoring"]["window_hours"] = 2 * delay + 24
    with pytest.raises(ParamsError, match=r"max_age_hours .* monitoring\.window_hours, \d+ h"):
        parse_settings(longer)
