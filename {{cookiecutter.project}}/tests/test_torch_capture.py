"""The torch family's captured step: when it runs, what it computes, how a run records it.

On a CPU the captured program (static buffers, one per batch shape, the last partial batch its
own shape) runs without graphs and must compute exactly what the eager loop computes. Tests
marked ``gpu`` capture it as CUDA graphs and compare with the eager loop on the same seed; they
skip with a reason when torch sees no CUDA device.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_torch_model import NO_GPU, fit, quick, rejection
from torch import nn
from typer.testing import CliRunner

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.config import parse_settings
from {{ cookiecutter.package }}.contract.validation import inputs
from {{ cookiecutter.package }}.data import labels, write_table
from {{ cookiecutter.package }}.lifecycle.report import Snapshot, training_section
from {{ cookiecutter.package }}.modeling.features import build_features, make_preprocessor
from {{ cookiecutter.package }}.modeling.torch_loop import History, train_network
from {{ cookiecutter.package }}.modeling.torch_model import (
    _seeded,
    build_network,
    cgroup_quota,
    quota_cores,
    resolve_threads,
    usable_cores,
)
from {{ cookiecutter.package }}.modeling.torch_steps import (
    Plan,
    batch_shapes,
    capture_blocker,
    choose_plan,
)
from {{ cookiecutter.package }}.pipeline import train as train_stage

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
CPU, CUDA = torch.device("cpu"), torch.device("cuda")
# The captured program run without graphs: the CPU tests' way to check its logic.
UNCAPTURED_PROGRAM = Plan(True, "static buffers without graphs", graphs=False)
# bf16 keeps 8 significant bits: one rounding is up to 2**-8 (0.4 %) of a value. Captured and
# eager steps run the same kernels on the same rows with the same dropout masks, so they differ
# only where cuBLAS orders a bf16 sum differently inside a capture, by about one such rounding in
# a few activations; averaged over a batch that moves a loss by far less than 2e-3, while a step
# on other rows or other dropout masks (the bugs this guards against) moves it by more (checked
# below with another seed).
BF16_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def sample(splits, settings) -> tuple[pd.DataFrame, np.ndarray]:
    frame = splits[0].sample(n=1500, random_state=0)
    return inputs(frame), labels(frame, settings.data)


@pytest.fixture(scope="module")
def tensors(sample) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """1,350 training and 150 validation rows as model inputs."""
    frame, truth = sample
    x = make_preprocessor().fit_transform(build_features(frame))
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(truth, dtype=np.float32)).unsqueeze(1)
    return (x[:1350], y[:1350]), (x[1350:], y[1350:])


def train(settings, tensors, device=CPU, seed=7, **options) -> tuple[History, nn.Module]:
    """Three epochs of ``train_network`` on ``tensors``; options go to it or to params."""
    keywords = {key: options.pop(key) for key in ["plan", "resident"] if key in options}
    params = quick(settings, device=device.type, **options)
    history = History()
    with _seeded(seed, device):
        network = build_network(tensors[0][0].shape[1], params["hidden_sizes"], params["dropout"])
        network = train_network(network, *tensors, params, device, seed, history, **keywords)
    return history, network


def say_lines(captured) -> list[str]:
    return [line for line in captured.readouterr().err.splitlines() if line.startswith("training:")]


def test_batch_shapes_are_full_batches_then_the_remainder() -> None:
    assert batch_shapes(1350, 256) == [256, 70]
    assert batch_shapes(1280, 256) == [256]  # no partial batch: one shape
    assert batch_shapes(150, 1024) == [150]  # all rows in one short batch
    assert batch_shapes(256, 256) == [256]


@pytest.mark.parametrize(
    ("batch_size", "resident"),
    [(256, True), (270, True), (2048, True), (256, False)],
    ids=["partial-last-batch", "no-partial-batch", "only-a-partial-batch", "streamed"],
)
def test_captured_program_computes_the_eager_losses_on_cpu(
    settings, tensors, batch_size: int, resident: bool
) -> None:
    """Same losses and weights, bit for bit: the program is the eager step on static buffers,
    and the last partial batch is its own shape, not padded rows."""
    eager, eager_net = train(settings, tensors, batch_size=batch_size, resident=resident)
    program, program_net = train(
        settings, tensors, batch_size=batch_size, plan=UNCAPTURED_PROGRAM, resident=resident
    )
    assert eager.path == "eager" and program.path == "captured"
    shapes = " and ".join(f"{rows:,}" for rows in batch_shapes(1350, batch_size))
    assert f"train step at {shapes} rows, validation at 150 rows" in program.path_reason
    assert program.train_loss == eager.train_loss and program.val_loss == eager.val_loss
    assert program.resident == resident
    for name, value in eager_net.state_dict().items():
        assert torch.equal(program_net.state_dict()[name], value), name


def test_capture_key_auto_false_true_and_bad_values(settings) -> None:
    assert settings.train.torch.capture == "auto"
    auto = choose_plan("auto", CPU, None)
    assert not auto.captured and "need a CUDA device" in auto.reason
    assert choose_plan(False, CPU, None) == Plan(False, "train.torch.capture is false")
    with pytest.raises(ValueError, match=r"^train.torch.capture is true but CUDA graphs need a"):
        choose_plan(True, CPU, None)
    for bad in ["sometimes", "yes", 1]:
        assert f"train.torch.capture is {bad!r}" in rejection(settings, capture=bad)


def test_what_cannot_be_captured_is_known_before_trying() -> None:
    assert capture_blocker(CUDA, None, "2.11.0+cu130") is None
    assert capture_blocker(CUDA, torch.bfloat16, "2.4.1") is None
    assert "torch 2.3.1 is older than 2.4" in capture_blocker(CUDA, None, "2.3.1")
    assert "fp16 needs a GradScaler" in capture_blocker(CUDA, torch.float16, "2.11.0")
    assert "on the CPU" in capture_blocker(CPU, None, "2.11.0")
    assert choose_plan("auto", CUDA, None, "2.11.0").captured
    assert not choose_plan("auto", CUDA, torch.float16, "2.11.0").captured


@pytest.mark.parametrize(
    ("capture", "why"),
    [("auto", "CUDA graphs need a CUDA device"), (False, "train.torch.capture is false")],
)
def test_a_cpu_fit_says_in_one_line_why_it_trains_eagerly(settings, sample, capsys, capture, why):
    history = fit(settings, sample, max_epochs=1, capture=capture).history
    lines = say_lines(capsys)
    assert lines == [f"training: eager loop because {history.path_reason}; fp32 on cpu, 1 thread"]
    assert why in history.path_reason and history.path == "eager"


def test_capture_true_on_a_cpu_stops_train_with_one_error_line(
    tmp_path: Path, monkeypatch, settings, splits
) -> None:
    raw = settings.model_dump()
    raw["train"]["model"] = "torch"
    raw["train"]["torch"].update(capture=True, device="cpu")
    (tmp_path / "params.yaml").write_text(json.dumps(raw))  # JSON is valid YAML
    monkeypatch.chdir(tmp_path)
    write_table(splits[0].head(600), config.TRAIN_SPLIT)
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: train.torch.capture is true but CUDA graphs need a CUDA device and this run is "
        "on the CPU; set it to auto to train with the eager loop where capture is not possible."
    ]
    assert not config.MODEL_DIR.exists()


def test_the_train_stage_records_the_path_for_metrics_and_the_pr_report(
    settings, splits, tmp_path: Path
) -> None:
    raw = settings.model_dump()
    raw["train"]["model"] = "torch"
    raw["train"]["torch"].update(max_epochs=1, device="cpu")
    write_table(splits[0].head(600), tmp_path / "train.parquet")
    info = tmp_path / "training.json"
    train_stage.run(parse_settings(raw), tmp_path / "train.parquet", tmp_path / "model", info)
    record = json.loads(info.read_text())
    assert record["device"] == "cpu" and record["precision"] == "fp32"
    assert record["path"] == "eager" and "CUDA graphs need a CUDA device" in record["path_reason"]
    assert record["cpu_threads"] == 1
    saved = json.loads((tmp_path / "model" / "history.json").read_text())
    assert {key: saved[key] for key in ["path", "path_reason", "device"]} == {
        key: record[key] for key in ["path", "path_reason", "device"]
    }
    report = "\n".join(training_section(Snapshot("this change", training=record), Snapshot("main")))
    assert "| path | - | eager |" in report
    assert f"| path_reason | - | {record['path_reason']} |" in report


def test_cpu_threads_auto_is_one_and_a_number_is_capped_at_the_usable_cores(settings) -> None:
    assert settings.train.torch.cpu_threads == "auto"
    assert resolve_threads("auto", 16) == 1
    assert resolve_threads(4, 2) == 2  # more threads than cores only oversubscribe them
    assert resolve_threads(2, 16) == 2
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= usable_cores() <= affinity


def test_cgroup_quota_in_whole_cores(tmp_path: Path) -> None:
    assert quota_cores("150000", "100000") == 2  # a part-core still runs a thread
    assert quota_cores("50000", "100000") == 1
    assert quota_cores("max", "100000") is None and quota_cores("-1", "100000") is None
    v2 = tmp_path / "v2"
    (v2 / "app" / "job").mkdir(parents=True)
    (v2 / "app" / "cpu.max").write_text("300000 100000\n")  # the parent's quota binds too
    (v2 / "app" / "job" / "cpu.max").write_text("max 100000\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/app/job\n")
    assert cgroup_quota(v2, membership) == 3
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    membership.write_text("4:memory:/x\n3:cpu,cpuacct:/\n")
    assert cgroup_quota(v1, membership) == 2
    membership.write_text("0::/\n")
    assert cgroup_quota(tmp_path / "none", membership) is None


def losses(history: History) -> np.ndarray:
    return np.array([history.train_loss, history.val_loss])


@pytest.mark.gpu
@needs_gpu
def test_captured_training_matches_the_eager_loop_in_fp32(settings, sample, records) -> None:
    """Three epochs, same seed: dropout, shuffle and the partial batch replay exactly."""
    options = {"device": "cuda", "mixed_precision": False, "dropout": 0.1}
    captured = fit(settings, sample, capture="auto", **options)
    eager = fit(settings, sample, capture=False, **options)
    assert captured.history.path == "captured" and eager.history.path == "eager"
    assert captured.history.epochs == eager.history.epochs == 3
    np.testing.assert_allclose(losses(captured.history), losses(eager.history), rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        captured.predict_proba(records), eager.predict_proba(records), rtol=0, atol=1e-5
    )


@pytest.mark.gpu
@needs_gpu
def test_captured_training_matches_the_eager_loop_in_bf16(settings, sample, records) -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip("needs a GPU with bf16 (compute capability 8.0 or newer)")
    options = {"device": "cuda", "mixed_precision": True}
    captured = fit(settings, sample, capture="auto", **options)
    eager = fit(settings, sample, capture=False, **options)
    assert captured.history.precision == eager.history.precision == "bf16"
    assert captured.history.path == "captured"
    gap = np.abs(losses(captured.history) - losses(eager.history)).max()
    assert gap <= BF16_TOLERANCE
    scores = np.abs(captured.predict_proba(records) - eager.predict_proba(records)).max()
    assert scores <= BF16_TOLERANCE
    other = fit(settings, sample, seed=8, capture=False, **options)
    assert np.abs(losses(other.history) - losses(eager.history)).max() > BF16_TOLERANCE


@pytest.mark.gpu
@needs_gpu
def test_streamed_data_is_captured_too(settings, tensors) -> None:
    host = tuple(tuple(t.pin_memory() for t in part) for part in tensors)
    captured, captured_net = train(settings, host, CUDA, resident=False, mixed_precision=False)
    eager, eager_net = train(
        settings, host, CUDA, resident=False, mixed_precision=False, capture=False
    )
    assert captured.path == "captured" and not captured.resident
    np.testing.assert_allclose(losses(captured), losses(eager), rtol=0, atol=1e-5)
    for name, value in eager_net.state_dict().items():
        torch.testing.assert_close(captured_net.state_dict()[name], value, rtol=0, atol=1e-5)


class WaitsForTheGpu(nn.Module):
    """Python control flow on a GPU value: fine eagerly, impossible inside a capture."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if bool(torch.isfinite(x).all()) else torch.nan_to_num(x)


@pytest.mark.gpu
@needs_gpu
def test_a_network_that_cannot_be_captured_falls_back_with_one_line(
    settings, tensors, capsys
) -> None:
    params = quick(settings, device="cuda", mixed_precision=False)

    def run(capture: bool | str) -> History:
        history = History()
        with _seeded(7, CUDA):
            network = nn.Sequential(nn.Linear(tensors[0][0].shape[1], 32), WaitsForTheGpu())
            network.append(nn.ReLU()).append(nn.Linear(32, 1))
            train_network(network, *tensors, {**params, "capture": capture}, CUDA, 7, history)
        return history

    fallback = run("auto")
    assert fallback.path == "eager"
    assert fallback.path_reason.startswith("the step could not be captured (")
    assert say_lines(capsys) == [
        f"training: eager loop because {fallback.path_reason}; fp32 on {fallback.device}"
    ]
    eager = run(False)  # the fallback trains from the same start as a plain eager run
    np.testing.assert_allclose(losses(fallback), losses(eager), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"^train.torch.capture is true but the step could not"):
        run(True)
