"""The service's Batcher on a real event loop: one request alone, many batched, a slow model.

A slow model must never stall the event loop (BentoML answers /readyz and /metrics on it), and
requests that arrive while it scores are answered together, each with its own scores.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> ModuleType:
    """serving/service.py, imported with a scratch BentoML home (it looks up its model store)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml")))
        patch.setenv("BENTOML_DO_NOT_TRACK", "True")
        return importlib.import_module("{{ cookiecutter.package }}.serving.service")


class SlowModel:
    """Scores a record as its "x" field, after ``delay`` seconds; remembers each batch."""

    def __init__(self, delay: float, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.batches: list[list[float]] = []
        self.threads: set[str] = set()

    def __call__(self, records: list[dict]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        self.batches.append([record["x"] for record in records])
        if self.fail:
            raise RuntimeError("the model failed")
        return np.array([record["x"] for record in records], dtype=float)


def test_a_lone_request_is_scored_at_once_on_the_model_thread(service) -> None:
    model = SlowModel(0.0)
    batcher = service.Batcher(model, max_rows=8)
    scores = asyncio.run(batcher([{"x": 0.25}, {"x": 0.75}]))
    assert scores.tolist() == [0.25, 0.75]
    assert model.batches == [[0.25, 0.75]]
    assert all(name.startswith("model") for name in model.threads), model.threads


def test_requests_arriving_while_the_model_is_busy_are_batched_and_keep_their_answers(
    service,
) -> None:
    model = SlowModel(0.3)
    batcher = service.Batcher(model, max_rows=8)

    async def many() -> tuple[list[list[float]], int]:
        ticks = 0

        async def ticker() -> None:  # what /metrics needs: the loop free while the model runs
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        first = asyncio.create_task(batcher([{"x": 0.0}]))
        await asyncio.sleep(0.05)  # the first is on the model thread now
        rest = [batcher([{"x": index / 10}, {"x": index / 10 + 0.01}]) for index in range(1, 6)]
        answers = await asyncio.gather(first, *rest)
        ticking.cancel()
        return [answer.tolist() for answer in answers], ticks

    answers, ticks = asyncio.run(many())
    assert answers[0] == [0.0]
    for index, answer in enumerate(answers[1:], start=1):
        assert answer == [index / 10, index / 10 + 0.01]
    # The first alone; the five that waited in two batches of at most 8 rows (4 + 1 requests).
    assert [len(batch) for batch in model.batches] == [1, 8, 2]
    assert ticks >= 30, f"the event loop ran {ticks} times in ~0.9 s of scoring"


def test_a_failing_model_fails_every_waiting_request_and_the_next_one_is_scored(service) -> None:
    model = SlowModel(0.1, fail=True)
    batcher = service.Batcher(model, max_rows=8)

    async def attempt() -> list[object]:
        first = asyncio.create_task(batcher([{"x": 0.1}]))
        await asyncio.sleep(0.03)
        rest = [batcher([{"x": 0.2}]), batcher([{"x": 0.3}])]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    outcomes = asyncio.run(attempt())
    assert [str(outcome) for outcome in outcomes] == ["the model failed"] * 3
    model.fail = False
    assert asyncio.run(batcher([{"x": 0.4}])).tolist() == [0.4]
