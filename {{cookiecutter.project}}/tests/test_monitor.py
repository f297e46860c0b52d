"""`monitor` closes the loop: samples kept by the real sampler, drift judged against the training
split, and a workflow_dispatch request received by a local HTTP server standing in for the
GitHub API (loopback only, tests/fake_github.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from contract_data import as_records
from fake_github import TOKEN, GitHub

from {{ cookiecutter.package }}.config import SERVICE
from {{ cookiecutter.package }}.contract.validation import FEATURES
from {{ cookiecutter.package }}.monitoring.monitor import DRIFT_EXIT_CODE, MonitorError, monitor
from {{ cookiecutter.package }}.rollout.servers import Server
from {{ cookiecutter.package }}.serving.sampling import Sampler
from {{ cookiecutter.package }}.serving.sink import read_window

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DISPATCHES = "/repos/acme/churn/actions/workflows/retrain.yml/dispatches"
pytestmark = pytest.mark.slow


def serve_samples(sink: Path, trained, frame: pd.DataFrame) -> None:
    """What the service does per request: score, then hand records and scores to the sampler."""
    sampler = Sampler(sink, rate=1.0, flush_seconds=3600, clock=lambda: NOW.timestamp() - 600)
    for start in range(0, len(frame), 50):
        part = frame.iloc[start : start + 50]
        scores = trained.predict_proba(part[FEATURES])[:, 1]
        sampler.record(as_records(part), scores, "4")
    sampler.close()
    assert sampler.written == len(frame)


def run_monitor(settings, tmp_path, trained, splits, **options):
    reference = splits[0]
    return monitor(
        settings.monitoring.model_copy(update={"sink": str(tmp_path / "samples")}),
        settings.drift,
        reference,
        trained.predict_proba(reference[FEATURES])[:, 1],
        now=NOW,
        report_path=tmp_path / "monitor.json",
        textfile=tmp_path / "monitor.prom",
        **options,
    )


def to_github(github: GitHub) -> dict[str, str]:
    """monitor's options that send its dispatch to the local stand-in for the GitHub API."""
    return {"repository": "acme/churn", "api_url": github.url, "token": TOKEN}


def test_shifted_traffic_sends_one_well_formed_dispatch(
    github, settings, tmp_path, trained, splits, shifted_split
) -> None:
    moved, shifted_columns = shifted_split
    serve_samples(tmp_path / "samples", trained, moved)
    outcome = run_monitor(settings, tmp_path, trained, splits, **to_github(github))
    assert outcome.status == "drift" and outcome.sent and outcome.exit_code == DRIFT_EXIT_CODE
    [request] = github.requests
    assert request["method"] == "POST" and request["path"] == DISPATCHES
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    body = json.loads(request["body"])
    # workflow_dispatch: the branch, and exactly the inputs retrain.yml declares.
    assert body["ref"] == settings.monitoring.retrain_ref
    assert body["inputs"]["trigger"] == settings.monitoring.event_type
    assert set(body["inputs"]) == {"trigger", "reason"}
    assert all(column in body["inputs"]["reason"] for column in shifted_columns)
    record = json.loads((tmp_path / "monitor.json").read_text())
    assert record["status"] == "drift" and record["dispatch"]["sent"] is True
    assert set(shifted_columns) <= set(record["drift"]["drifted_columns"])
    assert record["window"]["samples"] == len(splits[1])
    assert record["window"]["model_versions"] == ["4"]
    assert TOKEN not in (tmp_path / "monitor.json").read_text()
    assert "model_drift_detected 1" in (tmp_path / "monitor.prom").read_text()


def test_a_window_without_drift_sends_nothing(github, settings, tmp_path, trained, splits) -> None:
    serve_samples(tmp_path / "samples", trained, splits[1])
    outcome = run_monitor(settings, tmp_path, trained, splits, **to_github(github))
    assert outcome.status == "no_drift", outcome.record["drift"]["drifted_columns"]
    assert outcome.exit_code == 0 and outcome.dispatch is None
    assert github.requests == []
    assert "model_drift_detected 0" in (tmp_path / "monitor.prom").read_text()


def test_too_few_samples_are_not_judged(
    github, settings, tmp_path, trained, splits, shifted_split
) -> None:
    serve_samples(tmp_path / "samples", trained, shifted_split[0].head(5))
    outcome = run_monitor(settings, tmp_path, trained, splits, **to_github(github))
    assert outcome.status == "too_few_samples" and outcome.exit_code == 0
    assert "drift.min_rows" in outcome.record["reason"] and github.requests == []


def test_samples_outside_the_window_are_ignored(
    settings, tmp_path, trained, splits, shifted_split
) -> None:
    serve_samples(tmp_path / "samples", trained, shifted_split[0])
    later = NOW + timedelta(hours=settings.monitoring.window_hours + 1)
    outcome = monitor(
        settings.monitoring.model_copy(update={"sink": str(tmp_path / "samples")}),
        settings.drift,
        splits[0],
        trained.predict_proba(splits[0][FEATURES])[:, 1],
        now=later,
        report_path=tmp_path / "monitor.json",
        textfile=None,
    )
    assert outcome.status == "too_few_samples" and outcome.record["window"]["samples"] == 0


def test_a_refused_dispatch_is_one_clear_error_and_recorded(
    github, settings, tmp_path, trained, splits, shifted_split
) -> None:
    github.status = 403
    serve_samples(tmp_path / "samples", trained, shifted_split[0])
    with pytest.raises(MonitorError, match=r"403.*Actions: Read and write"):
        run_monitor(settings, tmp_path, trained, splits, **to_github(github))
    record = json.loads((tmp_path / "monitor.json").read_text())
    assert record["dispatch"]["sent"] is False
    assert "403" in record["dispatch"]["error"]


# --- the command line, from a project directory -------------------------------------------------


@pytest.fixture()
def bare_project(tmp_path, trained, splits) -> Path:
    """A project directory: params.yaml (sink inside it), the training split and a model."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitoring"]["sink"] = "samples"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data/processed").mkdir(parents=True)
    splits[0].to_parquet(tmp_path / "data/processed/train.parquet")
    trained.save(tmp_path / "model")
    return tmp_path


@pytest.fixture()
def project(bare_project, trained, shifted_split) -> Path:
    """The project with shifted samples written now (the command's window ends now)."""
    sampler = Sampler(bare_project / "samples", rate=1.0, flush_seconds=3600)
    moved = shifted_split[0]
    sampler.record(as_records(moved), trained.predict_proba(moved[FEATURES])[:, 1], "4")
    sampler.close()
    return bare_project


def cli(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package }}", "monitor", "--model-dir", "model", *args],
        cwd=project,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_a_token_the_command_prints_the_request(project, shifted_split) -> None:
    done = cli(project, "--repository", "acme/churn")
    assert done.returncode == DRIFT_EXIT_CODE, done.stderr
    head, body = done.stdout.split("\n\n", 1)
    lines = head.splitlines()
    assert lines[0] == f"POST https://api.github.com{DISPATCHES}"
    assert "Authorization: Bearer <GITHUB_TOKEN not set>" in lines
    assert "X-GitHub-Api-Version: 2022-11-28" in lines
    request = json.loads(body)
    assert request["inputs"]["trigger"] == "drift-detected"
    assert all(column in request["inputs"]["reason"] for column in shifted_split[1])
    assert "GITHUB_TOKEN is not set" in done.stderr
    assert json.loads((project / "reports/monitor.json").read_text())["status"] == "drift"


def test_with_a_token_the_command_sends_it(project, github) -> None:
    done = cli(
        project, GITHUB_TOKEN=TOKEN, GITHUB_REPOSITORY="acme/churn", GITHUB_API_URL=github.url
    )
    assert done.returncode == DRIFT_EXIT_CODE, done.stderr
    assert [r["path"] for r in github.requests] == [DISPATCHES]
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ((), {"GITHUB_TOKEN": TOKEN}, "no repository is named"),
        (("--repository", "not a repo"), {}, "is not owner/name"),
        (("--reference", "missing.parquet"), {}, "missing.parquet not found"),
    ],
)
def test_bad_inputs_are_one_line_and_write_nothing(project, args, env, says) -> None:
    done = cli(project, *args, **env)
    assert done.returncode == 1
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (project / "reports/monitor.json").exists()


def test_a_bad_monitoring_value_names_its_key(project) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["monitoring"]["sample_rate"] = 1.5
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    done = cli(project, "--repository", "acme/churn")
    assert done.returncode == 1 and "monitoring.sample_rate" in done.stderr, done.stderr
    assert not (project / "reports/monitor.json").exists()


# --- the whole loop: the real service samples its traffic, monitor reads it ----------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def served(bare_project: Path, tmp_path_factory) -> Iterator[str]:
    """`make serve`'s command from the project directory: the trained model, every prediction
    sampled into the project's sink (SERVE_SAMPLE_RATE=1)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVE_", "GITHUB_"))}
    env |= {
        "SERVE_MODEL_DIR": str(bare_project / "model"),
        "SERVE_SAMPLE_RATE": "1",
        "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml")),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    log = bare_project / "serve.log"
    command = [str(Path(sys.executable).parent / "bentoml"), "serve"]
    command += [SERVICE, "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1"],
            cwd=bare_project,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        # The server and its workers, which run in sessions of their own: one process-group
        # signal would leave them behind.
        Server("served", url, process).stop()


def test_served_shifted_traffic_is_sampled_detected_and_dispatched(
    served, bare_project, github, shifted_split
) -> None:
    moved, shifted_columns = shifted_split
    traffic = as_records(moved)
    with httpx.Client(base_url=served, timeout=60) as client:
        for start in range(0, len(traffic), 100):
            response = client.post("/predict_batch", json=traffic[start : start + 100])
            assert response.status_code == 200, response.text
        refused = client.post("/predict", json={**traffic[0], "surprise": 1})
        assert refused.status_code == 422
        metrics = client.get("/metrics").text
    # The series the alert rules and the dashboard read, as the real server names them.
    assert re.search(
        r'bentoml_service_request_total\{[^}]*endpoint="/predict_batch"[^}]*'
        r'http_response_code="200"',
        metrics,
    )
    assert 'http_response_code="422"' in metrics
    assert "bentoml_service_request_duration_seconds_bucket{" in metrics
    assert "model_prediction_score_sum{" in metrics
    assert 'model_rejected_requests_total{reason="extra_field"}' in metrics
    # The writer thread flushes every few seconds: wait for every sample, boundedly.
    since = datetime.now(UTC) - timedelta(hours=1)
    deadline = time.monotonic() + 60
    while True:
        kept = read_window(bare_project / "samples", since, datetime.now(UTC) + timedelta(hours=1))
        if len(kept) >= len(traffic) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(kept) == len(traffic)  # sample_rate 1: every scored record, none refused
    assert set(kept["model_version"]) == {"local"}
    done = cli(
        bare_project,
        "--repository",
        "acme/churn",
        GITHUB_TOKEN=TOKEN,
        GITHUB_API_URL=github.url,
    )
    assert done.returncode == DRIFT_EXIT_CODE, done.stderr
    [body] = github.bodies()
    assert all(column in body["inputs"]["reason"] for column in shifted_columns)
