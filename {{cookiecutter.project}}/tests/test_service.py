"""The service over real HTTP: a bento built offline, served from the BentoML store.

One server per session (starting one costs seconds): `prepare-bento` packs a model trained in
this session, `bentoml build` builds the bento in a scratch BentoML home, and `bentoml serve`
runs it on a free loopback port from a directory with no params.yaml or MLflow store, so
everything it needs must be inside the bento. `make test` runs this server and its quick
checks; the 500 generated bad records are `slow` (`make test-all`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from bad_records import broken_records
from contract_data import as_records as as_json
from contract_data import breaking_value, column
from hypothesis import HealthCheck, given, settings

from {{ cookiecutter.package }}.contract.validation import FEATURES
from {{ cookiecutter.package }}.rollout.servers import Server

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_ready(url: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bentoml serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"bentoml serve not ready after {seconds}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def bento_env(tmp_path_factory) -> dict[str, str]:
    """A scratch BentoML home, no analytics, and no package index: the build must be offline."""
    home = tmp_path_factory.mktemp("bentoml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVE_")}
    env |= {
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "PIP_NO_INDEX": "1",
        "UV_OFFLINE": "1",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    }
    return env


@pytest.fixture(scope="session")
def bento(tmp_path_factory, trained, bento_env: dict[str, str]) -> str:
    """`make build`'s two steps, on a copy of the project and a model trained in this session."""
    work = tmp_path_factory.mktemp("project")
    trained.save(work / "model")
    shutil.copytree(
        ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ["bentofile.yaml", "params.yaml"]:
        shutil.copy(ROOT / name, work / name)
    package = "{{ cookiecutter.package }}"
    run([sys.executable, "-m", package, "prepare-bento", "--model-dir", "model"], work, bento_env)
    run([str(BIN / "bentoml"), "build", "-f", "build/bentofile.yaml", "src"], work, bento_env)
    return yaml.safe_load((work / "bentofile.yaml").read_text())["name"] + ":latest"


@pytest.fixture(scope="session")
def server(tmp_path_factory, bento: str, bento_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    where = tmp_path_factory.mktemp("serve")
    log = where / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
            cwd=where,
            env=bento_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals meant for pytest do not reach it
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield url
    finally:
        # The server and its workers, which run in sessions of their own: one process-group
        # signal would leave them behind.
        Server("bento", url, process).stop()


@pytest.fixture(scope="session")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as session:
        yield session


def test_http_predictions_equal_offline_predictions(client, trained, splits) -> None:
    rows = splits[1].head(200).reset_index(drop=True)
    offline = trained.predict_proba(rows[FEATURES])[:, 1]
    response = client.post("/predict_batch", json=as_json(rows))
    assert response.status_code == 200, response.text
    served = [p["probability"] for p in response.json()["predictions"]]
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-12)
    one = client.post("/predict", json=as_json(rows.head(1))[0]).json()
    assert one["probability"] == pytest.approx(offline[0], abs=1e-12)
    assert one["prediction"] is bool(offline[0] >= 0.5)
    assert one["model_version"] == "local"  # packed from a model directory, not the registry


def test_concurrent_requests_batched_together_keep_their_own_answers(
    server, trained, splits
) -> None:
    rows = splits[1].head(64).reset_index(drop=True)
    offline = trained.predict_proba(rows[FEATURES])[:, 1]

    def ask(record: dict) -> float:
        response = httpx.post(f"{server}/predict", json=record, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["probability"]

    with ThreadPoolExecutor(16) as pool:
        served = list(pool.map(ask, as_json(rows)))
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-12)


@pytest.mark.slow
@settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=broken_records())
def test_bad_records_get_a_4xx_naming_the_field_never_a_5xx(client, case) -> None:
    record, name, how = case
    response = client.post("/predict", json=record)
    assert response.status_code == 422, (how, name, response.text)
    body = response.json()
    assert name in {problem["column"] for problem in body["problems"]}, (how, body)
    assert name in body["error"]


def test_extra_field_and_wrong_dtype_are_both_named(client, records) -> None:
    number = column(kinds={"int", "float"})
    record = as_json(records)[0] | {"feature_c": 1.5, number: "72"}
    response = client.post("/predict", json=record)
    assert response.status_code == 422
    problems = {p["column"]: p for p in response.json()["problems"]}
    assert problems["feature_c"]["check"] == "extra column"
    assert problems[number]["expected"].startswith(("int64", "float64"))
    assert problems[number]["received"] == "'72' (str)"


def test_batch_request_names_the_row_of_each_problem(client, records) -> None:
    checked = next((name for name in FEATURES if breaking_value(name) is not None), None)
    if checked is None:
        pytest.skip("the contract has no value check (range or allowed values) to break")
    batch = as_json(records.head(5))
    batch[3][checked] = breaking_value(checked)
    response = client.post("/predict_batch", json=batch)
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert (problem["column"], problem["rows"]) == (checked, [3])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "valid dictionary"),
        (b"", 400, "not valid JSON"),
        (b"{}" + b" " * (5 * 1024 * 1024), 413, "SERVE_MAX_BODY_BYTES"),
    ],
)
def test_malformed_and_oversized_bodies_are_refused_clearly(client, body, status, words) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.text


def test_probes_and_metrics_tell_what_is_served(client, trained, records) -> None:
    positive = trained.predict_proba(records.head(1))[0, 1] >= 0.5
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.post("/predict", json=as_json(records)[0])
    client.post("/predict", json=as_json(records)[0] | {"feature_c": 1})
    metrics = client.get("/metrics").text
    assert 'model_info{alias="",model_name=' in metrics and 'source="dir"' in metrics
    assert 'model_prediction_score_count{model_version="local"}' in metrics
    label = "positive" if positive else "negative"  # the class, not a name from example data
    assert 'model_predictions_total{label="' + label + '",model_version="local"}' in metrics
    assert 'model_rejected_requests_total{reason="extra_field"}' in metrics


def test_every_answer_carries_a_request_id_and_keeps_a_callers(client, records) -> None:
    record = as_json(records.head(1))[0]
    fresh = client.post("/predict", json=record)
    assert fresh.json()["request_id"] == fresh.headers["x-request-id"]
    assert len(fresh.headers["x-request-id"]) == 32
    kept = client.post("/predict", json=record, headers={"X-Request-ID": "gateway-7f3a:12"})
    assert kept.headers["x-request-id"] == kept.json()["request_id"] == "gateway-7f3a:12"
    # Not well formed (a space, a comma): replaced, never echoed into logs and files.
    odd = client.post("/predict", json=record, headers={"X-Request-ID": "a b,c"})
    assert odd.headers["x-request-id"] == odd.json()["request_id"] != "a b,c"
    batch = client.post(
        "/predict_batch", json=as_json(records.head(3)), headers={"X-Request-ID": "b1"}
    )
    assert batch.json()["request_id"] == batch.headers["x-request-id"] == "b1"
    assert [p["request_id"] for p in batch.json()["predictions"]] == ["b1-0", "b1-1", "b1-2"]
    # Refusals carry one too: by the contract, and before any handler runs.
    refused = client.post(
        "/predict", json=record | {"feature_c": 1}, headers={"X-Request-ID": "r9"}
    )
    assert (refused.status_code, refused.headers["x-request-id"]) == (422, "r9")
    malformed = client.post("/predict", content=b"{", headers={"X-Request-ID": "r10"})
    assert (malformed.status_code, malformed.headers["x-request-id"]) == (400, "r10")
