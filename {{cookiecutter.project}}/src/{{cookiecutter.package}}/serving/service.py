"""The online service: BentoML 1.4, enforcing the data contract on every request.

Endpoints (POST, JSON): ``/predict`` takes one record (a JSON object), ``/predict_batch`` a
JSON array of records. A record that breaks the contract in schema.py gets a 422 whose body
names every problem (field, what was expected, what arrived); a body that is not JSON gets
BentoML's 400; a body over ``SERVE_MAX_BODY_BYTES`` gets a 413. BentoML adds ``/healthz``,
``/readyz`` and ``/metrics``; the metrics below add the prediction distribution, rejections by
reason and the served model version.

Run it with ``make serve`` (model from the MLflow registry) or serve a built bento.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from starlette.responses import JSONResponse

from {{ cookiecutter.package }}.contract.records import contract, problem_dicts
from {{ cookiecutter.package }}.contract.validation import Problem
from {{ cookiecutter.package }}.modeling.model import Classifier
from {{ cookiecutter.package }}.registry.tracking import ModelNotFound
from {{ cookiecutter.package }}.serving import SCORE_BUCKETS
from {{ cookiecutter.package }}.serving.choice import BENTO_MODEL, ModelInfo, choose, load
from {{ cookiecutter.package }}.serving.ids import ID_FIELD, RequestIds, current, row_ids
from {{ cookiecutter.package }}.serving.sampling import DROP_REASONS, Hooks
from {{ cookiecutter.package }}.serving.sampling import from_settings as sampler_from_settings

MAX_BODY_BYTES = int(os.environ.get("SERVE_MAX_BODY_BYTES", str(4 * 1024 * 1024)))
MAX_RECORDS = int(os.environ.get("SERVE_MAX_RECORDS", "10000"))
# Rows per model call when many requests wait at once; larger batches amortise per-call costs.
MAX_BATCH_ROWS = int(os.environ.get("SERVE_MAX_BATCH_ROWS", "256"))

log = logging.getLogger(__name__)

# Dashboards, alert rules and the canary analysis read these metric names: rename them in all
# of those places at once.
SCORES = bentoml.metrics.Histogram(
    name="model_prediction_score",
    documentation="Predicted probability of the positive class, per record",
    labelnames=["model_version"],
    buckets=SCORE_BUCKETS,
)
PREDICTIONS = bentoml.metrics.Counter(
    name="model_predictions",
    documentation="Predicted records by class, positive or negative (at evaluate.threshold)",
    labelnames=["model_version", "label"],
)
REJECTED = bentoml.metrics.Counter(
    name="model_rejected_requests",
    documentation="Requests refused before prediction, by reason (one count per reason)",
    labelnames=["reason"],
)
MODEL_INFO = bentoml.metrics.Gauge(
    name="model_info",
    documentation="The served model: always 1, the labels say which one",
    labelnames=["model_name", "model_version", "alias", "source"],
    multiprocess_mode="livemax",
)

# The prediction samples kept for `monitor` and `feedback` (serving/sampling.py).
SAMPLES = bentoml.metrics.Counter(
    name="model_samples",
    documentation="Scored records drawn for the sample (monitoring.sample_rate), kept or not",
)
SAMPLES_DROPPED = bentoml.metrics.Counter(
    name="model_samples_dropped",
    documentation="Drawn samples lost, by reason: queue_full, write_failed, bad_value",
    labelnames=["reason"],
)
SAMPLES_WRITTEN = bentoml.metrics.Gauge(
    name="model_samples_last_written_timestamp_seconds",
    documentation="When a worker last wrote samples to the sink (at first, when it started)",
    multiprocess_mode="livemax",
)

# Problem.check -> the reason label of REJECTED; any other check is a value out of its rules.
REASONS = {
    "missing column": "missing_field",
    "extra column": "extra_field",
    "dtype": "wrong_type",
    "not_nullable": "null_value",
}


def reason(problem: Problem) -> str:
    if problem.check in REASONS:
        return REASONS[problem.check]
    return "unknown_category" if problem.check.startswith("isin") else "out_of_range"


def refusal(
    status: int, error: str, problems: Sequence[Problem] = (), why: str = ""
) -> JSONResponse:
    """A 4xx body: one sentence, then every problem as field / check / expected / received."""
    for name in {reason(problem) for problem in problems} or {why}:
        REJECTED.labels(reason=name).inc()
    body: dict[str, Any] = {"error": error, "problems": problem_dicts(problems)}
    if problems:
        body["expected"] = contract().describe()
    return JSONResponse(body, status_code=status)


def contract_error(problems: Sequence[Problem]) -> JSONResponse:
    sentences = "; ".join(problem.sentence() for problem in problems[:10])
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return refusal(
        422,
        f"the request breaks the data contract ({len(problems)} problem(s)): {sentences}{more}",
        problems,
    )


class RequestGuard:
    """ASGI middleware in front of the API: refuse what must never reach a handler.

    Bodies over ``max_bytes`` get a 413 before they are read in full; bodies that are not JSON
    get a 400 that says where parsing failed (BentoML itself would answer those with a 500).
    Any content type is read as JSON, so ``curl -d @record.json`` works without a header.
    """

    def __init__(self, app: Any, max_bytes: int, paths: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self.refuse(scope, receive, send, length.decode("latin-1"))
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_bytes:  # chunked uploads carry no length up front
                await self.refuse(scope, receive, send, f"more than {self.max_bytes}")
                return
            if not message.get("more_body", False):
                break
        try:
            json.loads(body)
        except ValueError as error:
            response = refusal(
                400,
                f"the request body is not valid JSON ({error}); send one JSON object per "
                "record, e.g. curl -H 'Content-Type: application/json' -d @record.json",
                why="malformed_json",
            )
            await response(scope, receive, send)
            return
        headers[b"content-type"] = b"application/json"
        scope = {**scope, "headers": list(headers.items())}
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def refuse(self, scope: dict, receive: Callable, send: Callable, size: str) -> None:
        response = refusal(
            413,
            f"the request body is {size} bytes; the limit is {self.max_bytes} "
            "(SERVE_MAX_BODY_BYTES). Send fewer records per request, or use batch prediction "
            "(`predict --input FILE`) for files.",
            why="too_large",
        )
        await response(scope, receive, send)


class Batcher:
    """Adaptive batching for already-validated records, across concurrent requests.

    While the model scores one batch, new requests queue; the next call takes all of them (up
    to ``max_rows``). An idle service therefore answers a lone request at once, with no batching
    window to wait out, and a busy one pays the classifier's per-call overhead once per batch
    instead of once per request. BentoML's ``batchable=True`` merges request bodies before the
    API function sees them, so one bad record would fail its neighbours' requests; batching
    after validation keeps every error with its own request.
    """

    def __init__(self, score: Callable[[list[Mapping[str, Any]]], np.ndarray], max_rows: int):
        self.score = score
        self.max_rows = max_rows
        # One model thread: batches run one at a time anyway, and OpenMP thread limits are
        # per calling thread, so this one is limited once, when it starts.
        self.executor = ThreadPoolExecutor(1, "model", initializer=limit_model_threads)
        self.waiting: deque[tuple[Sequence[Mapping[str, Any]], asyncio.Future]] = deque()
        self.task: asyncio.Task | None = None
        self.direct = False  # a lone request is on the model thread without the drain task

    async def __call__(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if self.task is None and not self.direct:
            return await self.alone(records)
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((records, future))
        return await future

    async def alone(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        # Nothing scoring, nothing waiting: this request goes to the model thread itself. A
        # drain task and a future per request would cost as much again as the hop (at c=1, a
        # tenth of the whole request); requests that arrive meanwhile queue for the drain.
        self.direct = True
        try:
            return await self.on_model_thread(list(records))
        finally:
            self.direct = False
            if self.waiting:
                self.task = asyncio.create_task(self.drain())

    async def on_model_thread(self, records: list[Mapping[str, Any]]) -> np.ndarray:
        # Never on the event loop: a slow model must not stall /readyz, /metrics or the next
        # request's validation.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.score, records)

    async def drain(self) -> None:
        try:
            while self.waiting:
                batch = [self.waiting.popleft()]
                rows = len(batch[0][0])
                while self.waiting and rows + len(self.waiting[0][0]) <= self.max_rows:
                    batch.append(self.waiting.popleft())
                    rows += len(batch[-1][0])
                records = [record for part, _ in batch for record in part]
                try:
                    scores = await self.on_model_thread(records)
                except Exception as error:  # the model failed: every waiting request learns why
                    for _, future in batch:
                        if not future.cancelled():
                            future.set_exception(error)
                    continue
                start = 0
                for part, future in batch:
                    if not future.cancelled():
                        future.set_result(scores[start : start + len(part)])
                    start += len(part)
        finally:
            self.task = None


def load_served_model(bento: Any) -> tuple[Classifier, ModelInfo]:
    """The model by serving.choice's one rule; a built bento offers the model packed in it."""
    packed = None
    if bento is not None:
        tags = [model.tag for model in bento.info.all_models if model.tag.name == BENTO_MODEL]
        if not tags:
            raise ModelNotFound(f"bento {bento.tag} carries no model: build it with `make build`")
        packed = Path(bentoml.models.get(tags[0]).path)
    return load(choose(packed=packed))


def _in_model_store(name: str) -> bool:
    try:
        bentoml.models.get(name)
    except bentoml.exceptions.NotFound:
        return False
    return True


def limit_model_threads() -> None:
    # One OpenMP thread per model call: requests already run side by side, and a thread team
    # per single-row call costs more than the prediction itself (far more on a busy host).
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(os.environ.get("SERVE_MODEL_THREADS", "1")))


@bentoml.service(
    name="{{ cookiecutter.package | replace('_', '-') }}",
    workers=int(os.environ.get("SERVE_WORKERS", "1")),
    traffic={"timeout": 30, "max_concurrency": 1024},
    logging={"access": {"enabled": os.environ.get("SERVE_ACCESS_LOG", "0") == "1"}},
)
class ModelService:
    """The probability of the positive class (params.yaml data.positive_class) for records
    that keep the data contract, and the prediction at evaluate.threshold."""

    # `make build` puts the chosen model in BentoML's model store, and declaring it here packs
    # it into the bento. Declared only when present: a dev `bentoml serve` needs no store entry.
    if _in_model_store(BENTO_MODEL):
        bento_model = bentoml.models.BentoModel(BENTO_MODEL)

    def __init__(self) -> None:
        self.model, self.info = load_served_model(getattr(ModelService, "bento", None))
        self.contract = contract()
        self.batcher = Batcher(self.score, MAX_BATCH_ROWS)
        # The served version never changes in this process: look its metric series up once.
        version = self.info.version
        self.scores = SCORES.labels(model_version=version)
        self.positive = PREDICTIONS.labels(model_version=version, label="positive")
        self.negative = PREDICTIONS.labels(model_version=version, label="negative")
        # Samples for `monitor` (params.yaml monitoring, or SERVE_SAMPLE_RATE / _SINK).
        self.sampler = sampler_from_settings(
            Hooks(
                drawn=SAMPLES.inc,
                dropped=lambda why, count: SAMPLES_DROPPED.labels(reason=why).inc(count),
                written=SAMPLES_WRITTEN.set,
            )
        )
        for why in DROP_REASONS:  # every reason's series exists, at 0, before its first loss
            SAMPLES_DROPPED.labels(reason=why)
        MODEL_INFO.labels(
            model_name=self.info.name,
            model_version=self.info.version,
            alias=self.info.alias,
            source=self.info.source,
        ).set(1)
        log.info("serving %s", json.dumps(self.info.to_dict()))

    def score(self, records: list[Mapping[str, Any]]) -> np.ndarray:
        scores = self.model.predict_records(records)[:, 1]  # no DataFrame: modeling/fast.py
        positive = int((scores >= self.info.threshold).sum())
        for value in scores.tolist():
            self.scores.observe(value)
        self.positive.inc(positive)
        self.negative.inc(len(scores) - positive)
        return scores

    def keep(self, records: list[dict[str, Any]], scores: np.ndarray, ids: list[str]) -> None:
        """Hand scored records to the sampler with their ids: a buffer append, never blocking."""
        self.sampler.record(records, scores, self.info.version, ids)

    def answer(self, score: float) -> dict[str, Any]:
        return {
            "probability": float(score),
            "prediction": bool(score >= self.info.threshold),
            "model_version": self.info.version,
        }

    @bentoml.api(route="/predict")
    async def predict(self, record: dict[str, Any], /) -> dict[str, Any]:
        """One record (a JSON object with every contract field) -> its prediction."""
        problems = self.contract.check_record(record)
        if problems:
            return contract_error(problems)
        scores = await self.batcher([record])
        request_id = current()
        self.keep([record], scores, [request_id])
        return self.answer(scores[0]) | {ID_FIELD: request_id}

    @bentoml.api(route="/predict_batch")
    async def predict_batch(self, records: list[dict[str, Any]], /) -> dict[str, Any]:
        """A JSON array of records -> one prediction each, in order; any bad record fails all."""
        if len(records) > MAX_RECORDS:
            return refusal(
                413,
                f"{len(records)} records; the limit is {MAX_RECORDS} per request "
                "(SERVE_MAX_RECORDS). Split the request, or use batch prediction.",
                why="too_many_records",
            )
        problems = self.contract.check_records(records)
        if problems:
            return contract_error(problems)
        scores = await self.batcher(records) if records else []
        request_id = current()
        ids = row_ids(request_id, len(records))
        self.keep(records, scores, ids)
        return {
            ID_FIELD: request_id,
            "predictions": [
                self.answer(score) | {ID_FIELD: id_} for score, id_ in zip(scores, ids, strict=True)
            ],
        }


# Added first, so it runs first: the guard's refusals carry the request's id too.
ModelService.add_asgi_middleware(RequestIds, paths=("/predict", "/predict_batch"))
ModelService.add_asgi_middleware(
    RequestGuard, max_bytes=MAX_BODY_BYTES, paths=("/predict", "/predict_batch")
)
