"""Replayed traffic for a rollout that has no live clients (`make canary`, tests, benchmarks).

Threads post real records one per request to ``/predict`` through the front, bounded by a
request count and a time limit, and keep every failure a client would have seen: a non-2xx
answer or a transport error, with the moment it happened.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from {{ cookiecutter.package }}.contract.validation import FEATURES


@dataclass
class Traffic:
    """What the clients saw."""

    sent: int = 0
    statuses: Counter = field(default_factory=Counter)  # HTTP status (or "error") -> requests
    failures: list[tuple[float, str]] = field(default_factory=list)  # (time.time(), what)
    versions: Counter = field(default_factory=Counter)  # model_version in 200 answers

    @property
    def failed(self) -> int:
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "statuses": {str(code): count for code, count in self.statuses.items()},
            "first_failure": self.failures[0][0] if self.failures else None,
        }


class Replay:
    """Post ``records`` round-robin to ``url``/predict from ``threads`` threads until stopped,
    ``max_requests`` are sent, or ``max_seconds`` pass."""

    def __init__(
        self,
        url: str,
        records: Sequence[Mapping[str, Any]],
        threads: int = 4,
        max_requests: int = 100_000,
        max_seconds: float = 600.0,
        timeout_s: float = 30.0,
    ) -> None:
        if not records:
            raise ValueError("no records to replay")
        self.url = f"{url}/predict"
        self.records = records
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout_s = timeout_s
        self.traffic = Traffic()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Replay:
        self.deadline = time.monotonic() + self.max_seconds
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> Traffic:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        return self.traffic

    def _next(self) -> int | None:
        with self.lock:
            if self.traffic.sent >= self.max_requests:
                return None
            self.traffic.sent += 1
            return self.traffic.sent

    def _record(self, status: int | str, failure: str | None, version: str | None) -> None:
        with self.lock:
            self.traffic.statuses[status] += 1
            if failure is not None:
                self.traffic.failures.append((time.time(), failure))
            if version is not None:
                self.traffic.versions[version] += 1

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self.stopping.is_set() and time.monotonic() < self.deadline:
                number = self._next()
                if number is None:
                    return
                record = self.records[number % len(self.records)]
                try:
                    response = client.post(self.url, json=record)
                except httpx.HTTPError as error:
                    self._record("error", f"{type(error).__name__}: {error}", None)
                    continue
                if response.is_success:
                    self._record(response.status_code, None, response.json().get("model_version"))
                else:
                    self._record(response.status_code, f"HTTP {response.status_code}", None)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The model inputs of a table as JSON-ready records (missing values as null)."""
    from {{ cookiecutter.package }}.data import read_table

    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run `make repro` (it writes the holdout split), name another "
            "table with --replay, or judge live traffic only with --live"
        )
    frame = read_table(path)
    missing = [name for name in FEATURES if name not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the model inputs {missing}: replay a table of records")
    records = frame[FEATURES].astype(object).to_dict("records")
    return [
        {key: None if value != value else value for key, value in row.items()} for row in records
    ]
