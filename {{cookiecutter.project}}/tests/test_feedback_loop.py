"""The whole loop on real processes: a served model answers holdout records with request ids and
samples them; true outcomes come back as labels files; `feedback` joins them and model quality
follows them down; the gauge crosses its floor, promtool's unit test of the alert fires on those
exact values, and `monitor` asks the GitHub API stand-in (loopback) to retrain, naming why.

One server for the module: starting one costs seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from fake_github import TOKEN
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package }}.config import load_settings
from {{ cookiecutter.package }}.contract.validation import FEATURES
from {{ cookiecutter.package }}.monitoring.quality import prom_labels
from {{ cookiecutter.package }}.rollout.servers import start_server
from {{ cookiecutter.package }}.serving.sink import read_window

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_records(frame: pd.DataFrame) -> list[dict]:
    rows = frame[FEATURES].astype(object).to_dict("records")
    return [{k: None if v != v else v for k, v in row.items()} for row in rows]


@pytest.fixture(scope="module")
def served(tmp_path_factory, trained, splits) -> Iterator[tuple[Path, pd.DataFrame]]:
    """A project directory whose served model answered the holdout: one answer per row, with
    the response's id, the id header and the caller's id, if any. Every prediction sampled."""
    project = tmp_path_factory.mktemp("loop")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitoring"] |= {"sink": "samples", "labels": "labels"}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "data/processed").mkdir(parents=True)
    splits[0].to_parquet(project / "data/processed/train.parquet")
    trained.save(project / "model")
    env = {
        "SERVE_MODEL_DIR": str(project / "model"),
        "SERVE_SAMPLE_RATE": "1",
        "SERVE_SAMPLE_SINK": str(project / "samples"),
    }
    server = start_server("loop", free_port(), env, project / "serve.log")
    holdout = splits[1].reset_index(drop=True)
    records = as_records(holdout)
    answers: list[dict] = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for row in range(400):  # one by one: half with the caller's own id
                offered = f"holdout-{row}" if row % 2 else None
                headers = {"X-Request-ID": offered} if offered else {}
                response = client.post("/predict", json=records[row], headers=headers)
                assert response.status_code == 200, response.text
                answers.append(
                    response.json()
                    | {"header": response.headers["x-request-id"], "offered": offered}
                )
            for start in range(400, len(records), 100):  # batches: every other one named
                offered = f"batch-{start}" if start % 200 else None
                headers = {"X-Request-ID": offered} if offered else {}
                response = client.post(
                    "/predict_batch", json=records[start : start + 100], headers=headers
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["request_id"] == response.headers["x-request-id"]
                answers += [
                    p | {"header": body["request_id"], "offered": offered}
                    for p in body["predictions"]
                ]
        yield project, holdout.assign(answer=answers)
    finally:
        server.stop()


def samples_of(project: Path, expected: int) -> pd.DataFrame:
    """The samples the server wrote; its writer flushes every few seconds: wait, boundedly."""
    since = datetime.now(UTC) - timedelta(hours=2)
    deadline = time.monotonic() + 60
    while True:
        kept = read_window(project / "samples", since, datetime.now(UTC) + timedelta(hours=1))
        if len(kept) >= expected or time.monotonic() > deadline:
            return kept
        time.sleep(0.5)


def test_each_answer_and_its_sample_carry_the_request_id(served) -> None:
    project, holdout = served
    answers = holdout["answer"].tolist()
    ids = [answer["request_id"] for answer in answers]
    assert len(set(ids)) == len(ids) == len(holdout)
    for row, answer in enumerate(answers):
        if row < 400:  # /predict: the header is the body's id; a caller's id is kept
            assert answer["header"] == answer["request_id"]
            assert answer["offered"] in (None, answer["request_id"])
        else:  # /predict_batch: <request id>-<position>, the request's own id in the header
            assert answer["request_id"] == f"{answer['header']}-{(row - 400) % 100}"
            assert answer["offered"] in (None, answer["header"])
    kept = samples_of(project, len(holdout)).set_index("request_id")
    assert sorted(kept.index) == sorted(ids)
    scores = pd.Series([a["probability"] for a in answers], index=ids)
    np.testing.assert_allclose(kept.loc[ids, "score"], scores[ids], rtol=0, atol=1e-12)
    assert set(kept["model_version"]) == {answers[0]["model_version"]}


def labels_file(project: Path, holdout: pd.DataFrame, name: str, flip: bool) -> Path:
    """The holdout's true outcomes (or the opposite ones), by the id each prediction got."""
    data = load_settings(project / "params.yaml").data
    truth = holdout[data.target]
    if flip:  # a flipped relationship: what the model calls likely does not happen, and vice versa
        values = list(truth.unique())
        assert len(values) == 2, f"the holdout needs both classes of {data.target}"
        truth = truth.map({values[0]: values[1], values[1]: values[0]})
    labels = pd.DataFrame(
        {
            "request_id": [answer["request_id"] for answer in holdout["answer"]],
            data.target: truth,
            "observed_at": datetime.now(UTC).isoformat(),
        }
    )
    labels.to_csv(project / name, index=False)
    return project / name


def cli(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SERVE_"))}
    command = [sys.executable, "-m", "{{ cookiecutter.package }}", *args]
    return subprocess.run(
        command, cwd=project, env=clean | env, capture_output=True, text=True, timeout=300
    )


def bounds(project: Path) -> dict[str, float]:
    """model_quality_bound by metric, as the textfile collector would read it."""
    text = (project / "reports/quality.prom").read_text()
    return {
        sample.labels["metric"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "model_quality_bound"
    }


def alert_fires(project: Path, tmp_path: Path, version: str) -> bool:
    """promtool's unit test of ModelQualityBelowLimit on the exact gauge values just written:
    True when the alert fires (the test expecting it passes), False when it stays quiet."""
    if PROMTOOL is None:
        pytest.skip("promtool not found: install Prometheus (Debian: apt-get install prometheus)")
    rules = ROOT / "deploy/monitoring/alerts.yml"
    rule = next(
        r
        for r in yaml.safe_load(rules.read_text())["groups"][0]["rules"]
        if r["alert"] == "ModelQualityBelowLimit"
    )
    hold = int(rule["for"].removesuffix("m")) + 20
    series = [
        {
            "series": "model_quality_bound" + prom_labels(metric=metric, model_version=version),
            "values": f"{value!r}+0x{hold}",
        }
        for metric, value in bounds(project).items()
    ]
    outcomes = []
    for fires in (True, False):
        expected = (
            [
                {
                    "exp_labels": {
                        "severity": rule["labels"]["severity"],
                        "model_version": version,
                    },
                    "exp_annotations": rule["annotations"],
                }
            ]
            if fires
            else []
        )
        case = {
            "rule_files": [str(rules)],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": series,
                    "alert_rule_test": [
                        {
                            "eval_time": f"{hold}m",
                            "alertname": rule["alert"],
                            "exp_alerts": expected,
                        }
                    ],
                }
            ],
        }
        (tmp_path / "case.yml").write_text(yaml.safe_dump(case))
        done = subprocess.run(
            [PROMTOOL, "test", "rules", str(tmp_path / "case.yml")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        outcomes.append(done.returncode == 0)
    assert outcomes in ([True, False], [False, True]), outcomes  # exactly one expectation holds
    return outcomes[0]


def test_labels_move_quality_the_alert_and_the_retraining_request(
    served, tmp_path, github, settings
) -> None:
    project, holdout = served
    samples_of(project, len(holdout))
    version = holdout["answer"].iloc[0]["model_version"]
    floor = settings.evaluate.at_least["roc_auc"]
    # Outcomes as they happened: the model is right often enough, nothing fires.
    done = cli(
        project, "feedback", "--labels", str(labels_file(project, holdout, "right.csv", False))
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(holdout)} joined to their prediction" in done.stderr
    record = json.loads((project / "reports/quality.json").read_text())
    assert record["status"] == "ok", record["reasons"]
    assert bounds(project)["roc_auc"] >= floor
    assert not alert_fires(project, tmp_path, version)
    # The relationship flips: the same predictions now mostly wrong. Newest labels count.
    done = cli(
        project, "feedback", "--labels", str(labels_file(project, holdout, "flip.csv", True))
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(holdout)} ids were labelled before" in done.stderr
    record = json.loads((project / "reports/quality.json").read_text())
    assert record["status"] == "below_limit"
    assert bounds(project)["roc_auc"] < floor
    assert alert_fires(project, tmp_path, version)
    assert "🔻" in (project / "reports/quality.md").read_text()
    # The scheduled monitor reads the same labels and asks GitHub to retrain, saying why.
    done = cli(
        project,
        "monitor",
        "--model-dir",
        "model",
        "--repository",
        "acme/churn",
        GITHUB_TOKEN=TOKEN,
        GITHUB_API_URL=github.url,
    )
    assert done.returncode == 3, done.stderr
    [request] = github.requests
    assert request["path"] == "/repos/acme/churn/actions/workflows/retrain.yml/dispatches"
    inputs = json.loads(request["body"])["inputs"]
    assert inputs["trigger"] == settings.monitoring.quality.event_type
    assert "roc_auc" in inputs["reason"] and f"model v{version}" in inputs["reason"]
    assert TOKEN not in done.stdout + done.stderr
