"""A sample sink that fails never fails or slows a prediction: the real service over real HTTP,
its sink made to fail on demand (tests/faulty_sink.py), with every sample accounted for.

One server for the module. Each test sends single records (their latency is compared with the
same requests before any fault) and batches of ``BATCH`` records, the sampler's ``flush_rows``,
so that every batch starts a flush at once instead of after the 5-second timer.
"""

from __future__ import annotations

import re
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from contract_data import as_records

from {{ cookiecutter.package }}.rollout.servers import start_server
from {{ cookiecutter.package }}.serving.choice import choose, export

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
BATCH, SINGLES = 1_000, 40
QUEUE = 10_000  # the sampler's max_buffer
SAMPLE_METRIC = re.compile(r'^(model_samples_\w+)(?:\{reason="(\w+)"\})? (\S+)$', re.M)
NAMES = {"model_samples_total": "drawn", "model_samples_last_written_timestamp_seconds": "written"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, value: Callable[[], object], expected: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while (now := value()) != expected:
        assert time.monotonic() < deadline, f"{what}: {now!r}, expected {expected!r}"
        time.sleep(0.2)


@dataclass
class Faulty:
    """The served service, the file that sets its sink's fault, and what it wrote and said."""

    url: str
    control: Path
    sink: Path
    log: Path
    rows: list[dict]
    normal: float = 0.0  # p90 seconds of a single /predict before any fault

    def fault(self, name: str) -> None:
        self.control.write_text(name)

    def singles(self) -> list[float]:
        """SINGLES one-record requests in turn: each answered 200; their latencies."""
        times = []
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for record in self.rows[:SINGLES]:
                started = time.perf_counter()
                response = client.post("/predict", json=record)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
        return times

    def batch(self) -> None:
        response = httpx.post(f"{self.url}/predict_batch", json=self.rows, timeout=60)
        assert response.status_code == 200, response.text

    def metrics(self) -> dict[str, float]:
        """The sampler's series: ``dropped_<reason>``, ``drawn`` and ``written`` (the time)."""
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        found = {}
        for name, reason, value in SAMPLE_METRIC.findall(text):
            key = f"dropped_{reason}" if reason else NAMES.get(name)
            if key is not None:
                found[key] = float(value)
        return found

    def lines(self) -> int:
        """Whole sample lines in the sink."""
        return sum(path.read_bytes().count(b"\n") for path in self.sink.rglob("*.jsonl"))


def p90(times: list[float]) -> float:
    return statistics.quantiles(times, n=10)[-1]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, trained, splits) -> Iterator[Faulty]:
    where = tmp_path_factory.mktemp("sink-faults")
    trained.save(where / "trained")
    # With its origin inside: the server runs in tests/, away from params.yaml.
    export(choose(model_dir=where / "trained"), where / "model")
    env = {
        "SERVE_MODEL_DIR": str(where / "model"),
        "SERVE_SAMPLE_RATE": "1",  # every scored record: the counts below are exact
        "SERVE_SAMPLE_SINK": str(where / "samples"),
        "SERVE_SAMPLE_MAX_AGE_HOURS": "24",
        "SERVE_SAMPLE_MAX_MEGABYTES": "1000",
        "FAULT_SINK_FILE": str(where / "fault"),
    }
    log = where / "serve.log"
    server = start_server("sink", free_port(), env, log, "faulty_sink:ModelService", TESTS)
    holdout = as_records(splits[1])
    rows = [holdout[row % len(holdout)] for row in range(BATCH)]
    service = Faulty(server.url, where / "fault", where / "samples", log, rows)
    try:
        service.singles()  # warm up
        service.normal = p90(service.singles())
        wait_for("samples written before any fault", service.lines, 2 * SINGLES)
        yield service
    finally:
        service.fault("")  # a hung writer would hold the shutdown
        server.stop()


@pytest.mark.parametrize("fault", ["enospc", "eacces"])
def test_a_sink_that_cannot_write_loses_samples_never_requests(faulty, fault) -> None:
    said = len(faulty.log.read_text())
    lines, lost = faulty.lines(), faulty.metrics()["dropped_write_failed"]

    def lost_now() -> float:
        return faulty.metrics()["dropped_write_failed"] - lost

    faulty.fault(fault)
    times = faulty.singles()
    faulty.batch()
    wait_for("samples lost to the first failed write", lost_now, SINGLES + BATCH)
    faulty.batch()  # a second failed write: counted, not logged again
    wait_for("samples lost to the second", lost_now, SINGLES + 2 * BATCH)
    assert faulty.lines() == lines
    faulty.fault("")  # the disk has room again: writing resumes by itself
    faulty.batch()
    wait_for("samples written after the fault", faulty.lines, lines + BATCH)
    assert lost_now() == SINGLES + 2 * BATCH
    recovered = f"lost meanwhile: {SINGLES + 2 * BATCH} (write_failed)"
    wait_for("the log's line on recovery", lambda: recovered in faulty.log.read_text(), True)
    log = faulty.log.read_text()[said:]
    assert log.count("samples are being dropped (write_failed)") == 1, log
    assert log.count("lost meanwhile") == 1
    assert p90(times) <= 3 * faulty.normal + 0.05, (times, faulty.normal)


def test_a_hung_sink_holds_no_request_and_counts_what_overflows(faulty) -> None:
    said = len(faulty.log.read_text())
    lines, before = faulty.lines(), faulty.metrics()
    faulty.fault("hang")
    faulty.batch()  # the writer takes these and hangs
    time.sleep(0.5)
    for _ in range(11):  # 11 * BATCH more: the queue holds QUEUE of them
        faulty.batch()
    times = faulty.singles()
    during = faulty.metrics()
    lost = during["dropped_queue_full"] - before["dropped_queue_full"]
    sent = 12 * BATCH + SINGLES
    assert lost == sent - BATCH - QUEUE  # all but the hung write and a full queue
    assert during["written"] == before["written"]  # the stale alert's clock stands still
    faulty.fault("")  # the mount answers again: the hung write completes, the queue drains
    wait_for("samples written after the hang", faulty.lines, lines + sent - lost)
    after = faulty.metrics()
    assert after["dropped_queue_full"] - before["dropped_queue_full"] == lost
    assert after["dropped_write_failed"] == before["dropped_write_failed"]
    assert after["drawn"] - before["drawn"] == sent  # each written, or counted as lost
    assert after["written"] > before["written"]
    recovered = f"lost meanwhile: {lost:.0f} (queue_full)"
    wait_for("the log's line on recovery", lambda: recovered in faulty.log.read_text(), True)
    log = faulty.log.read_text()[said:]
    assert log.count("samples are being dropped (queue_full)") == 1, log
    assert p90(times) <= 3 * faulty.normal + 0.05, (times, faulty.normal)
