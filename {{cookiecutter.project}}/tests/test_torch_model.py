"""The torch family: determinism, save/load, device choice, early stopping, MLflow, GPU paths.

Fits here use a few epochs on part of the real training split, so the file stays fast on a CPU.
GPU tests are marked ``gpu`` and skip with a reason when torch sees no CUDA device. The captured
step, its fallbacks and the thread count are tested in test_torch_capture.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from contract_data import as_records
from hypothesis import given
from hypothesis import settings as examples
from strategies import frames
from typer.testing import CliRunner

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.cli import app
from {{ cookiecutter.package }}.config import ParamsError, parse_settings
from {{ cookiecutter.package }}.contract.schema import ModelInput
from {{ cookiecutter.package }}.contract.validation import inputs
from {{ cookiecutter.package }}.data import labels, write_table
from {{ cookiecutter.package }}.modeling.meta import HISTORY_FILE
from {{ cookiecutter.package }}.modeling.metrics import METRICS, compute
from {{ cookiecutter.package }}.modeling.model import load_model
from {{ cookiecutter.package }}.modeling.torch_loop import autocast_dtype, mixed_precision_pays
from {{ cookiecutter.package }}.modeling.torch_model import (
    WEIGHTS_FILE,
    TorchModel,
    resolve_device,
    resolve_workers,
)

NO_GPU = "needs a CUDA GPU: torch.cuda.is_available() is False on this machine"
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)


@pytest.fixture(scope="module")
def sample(splits, settings) -> tuple[pd.DataFrame, np.ndarray]:
    """Part of the real training split: enough signal to learn, small enough to be quick."""
    frame = splits[0].sample(n=min(1500, len(splits[0])), random_state=0)
    return inputs(frame), labels(frame, settings.data)


def quick(settings, **overrides) -> dict:
    return {**settings.train.torch.model_dump(), "max_epochs": 3, "device": "cpu", **overrides}


def fit(settings, sample, seed: int = 7, **overrides) -> TorchModel:
    return TorchModel(quick(settings, **overrides), seed).fit(*sample)


def rejection(settings, **torch_params) -> str:
    """The error params.yaml gets for these train.torch values."""
    raw = settings.model_dump()
    raw["train"]["torch"].update(torch_params)
    with pytest.raises(ParamsError) as caught:
        parse_settings(raw)
    return str(caught.value)


def test_same_seed_gives_identical_model_on_cpu(settings, sample, records) -> None:
    first, second = fit(settings, sample), fit(settings, sample)
    np.testing.assert_array_equal(first.predict_proba(records), second.predict_proba(records))
    assert first.history == second.history
    refit = second.fit(*sample)  # fitting the same instance again starts from scratch
    np.testing.assert_array_equal(refit.predict_proba(records), first.predict_proba(records))
    assert refit.history == first.history
    other = fit(settings, sample, seed=8)
    assert not np.array_equal(other.predict_proba(records), first.predict_proba(records))


def test_fit_leaves_global_torch_state_as_it_found_it(settings, sample) -> None:
    rng = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    fit(settings, sample, max_epochs=1)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_save_load_round_trip_gives_identical_predictions(settings, sample, records, tmp_path):
    model = fit(settings, sample)
    model.save(tmp_path / "model")
    for name in [WEIGHTS_FILE, "preprocessor.joblib", HISTORY_FILE, "meta.json"]:
        assert (tmp_path / "model" / name).is_file(), name
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, TorchModel)
    np.testing.assert_array_equal(loaded.predict_proba(records), model.predict_proba(records))
    assert loaded.history == model.history


def test_untrained_model_says_what_to_do(settings, records, tmp_path) -> None:
    model = TorchModel(quick(settings), seed=1)
    with pytest.raises(ValueError, match="fit"):
        model.predict_proba(records)
    with pytest.raises(ValueError, match="fit"):
        model.save(tmp_path)


def test_device_selection(settings) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert "train.torch.device is 'tpu': Input should be 'auto', 'cpu' or 'cuda'" in rejection(
        settings, device="tpu"
    )


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        return
    with pytest.raises(ValueError, match=r"train.torch.device is 'cuda'.*'auto' or 'cpu'"):
        resolve_device("cuda")


def test_cpu_runs_in_fp32_and_without_worker_processes(settings) -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, enabled=True) is None
    assert resolve_workers("auto", cpu) == 0
    assert resolve_workers(2, cpu) == 2
    for bad in ["many", -1, 1.5, True]:
        assert f"train.torch.num_workers is {bad!r}" in rejection(settings, num_workers=bad)
    for bad in [0, "all"]:
        assert f"train.torch.cpu_threads is {bad!r}" in rejection(settings, cpu_threads=bad)


def test_epoch_settings_below_one_are_named(settings) -> None:
    for name in ["max_epochs", "patience"]:
        assert f"train.torch.{name} is 0" in rejection(settings, **{name: 0})


def test_early_stopping_stops_when_validation_loss_stalls(settings, sample) -> None:
    """Shuffled labels carry no signal, so the validation loss soon stops improving."""
    frame, truth = sample
    noise = np.random.default_rng(0).permutation(truth)
    model = TorchModel(quick(settings, max_epochs=100, patience=3, learning_rate=0.01), 3)
    history = model.fit(frame, noise).history
    assert history.stopped_early
    assert history.epochs == history.best_epoch + 3 < 100
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1


def test_epoch_losses_go_to_the_active_mlflow_run(settings, sample, tmp_path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        model = fit(settings, sample)
    client = mlflow.MlflowClient()
    logged = client.get_metric_history(run.info.run_id, "val_loss")
    assert [point.step for point in logged] == [1, 2, 3]
    assert [point.value for point in logged] == pytest.approx(model.history.val_loss)


def test_bad_device_in_params_is_one_error_line(
    tmp_path: Path, monkeypatch, settings, splits
) -> None:
    raw = settings.model_dump()
    raw["train"]["model"] = "torch"
    raw["train"]["torch"]["device"] = "gpu"
    (tmp_path / "params.yaml").write_text(json.dumps(raw))  # JSON is valid YAML
    monkeypatch.chdir(tmp_path)
    write_table(splits[0], config.TRAIN_SPLIT)
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 1
    assert "ERROR:" in result.output and "train.torch.device is 'gpu'" in result.output
    assert "Traceback" not in result.output
    assert not config.MODEL_DIR.exists()


@pytest.fixture(scope="module")
def quick_model(settings, sample) -> TorchModel:
    return fit(settings, sample)


@examples(max_examples=30, deadline=None)
@given(frame=frames(ModelInput.to_schema(), max_size=12))
def test_records_path_gives_the_frame_path_probabilities(quick_model, frame) -> None:
    """The service's path (JSON records, no DataFrame) for the torch family, within 1e-9."""
    expected = quick_model.predict_proba(inputs(frame))
    records = as_records(frame)
    np.testing.assert_allclose(quick_model.predict_records(records), expected, rtol=0, atol=1e-9)
    alone = np.vstack([quick_model.predict_records([record]) for record in records])
    np.testing.assert_allclose(alone, expected, rtol=0, atol=1e-9)


def test_untrained_model_scores_no_records(settings, records) -> None:
    with pytest.raises(ValueError, match="fit"):
        TorchModel(quick(settings), seed=1).predict_records(as_records(records))


def test_mixed_precision_auto_turns_on_only_where_it_pays(settings) -> None:
    assert settings.train.torch.mixed_precision == "auto"
    assert mixed_precision_pays((9, 0), batch_size=4096, width=512)
    assert not mixed_precision_pays((9, 0), batch_size=256, width=64)  # launch-bound: slower
    assert not mixed_precision_pays((9, 0), batch_size=4096, width=64)
    assert not mixed_precision_pays((7, 5), batch_size=4096, width=512)  # no bf16 tensor cores
    assert autocast_dtype(torch.device("cpu"), "auto", 4096, 512) is None
    assert "train.torch.mixed_precision is 'sometimes'" in rejection(
        settings, mixed_precision="sometimes"
    )


def test_cpu_training_gathers_batches_from_memory_and_records_it(quick_model) -> None:
    assert quick_model.history.resident
    assert quick_model.history.precision == "fp32"


@pytest.mark.gpu
@needs_gpu
def test_gpu_training_uses_mixed_precision_and_clears_the_floor(settings, splits) -> None:
    train, test = splits
    torch_params = {**settings.train.torch.model_dump(), "device": "cuda", "mixed_precision": True}
    model = TorchModel(torch_params, settings.seed).fit(inputs(train), labels(train, settings.data))
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert model.history.precision == expected
    assert model.history.path == ("captured" if expected == "bf16" else "eager")
    assert model.history.device == torch.cuda.get_device_name(0)
    scores = model.predict_proba(inputs(test))[:, 1]
    values = compute(labels(test, settings.data), scores, settings.evaluate.threshold)
    primary = settings.evaluate.primary_metric
    limit = settings.evaluate.limit(primary)
    assert limit is None or METRICS[primary].regression(limit, values[primary]) <= 0, values


@pytest.mark.gpu
@needs_gpu
def test_gpu_model_saved_then_loaded_on_cpu_predicts_the_same(
    settings, sample, records, tmp_path
) -> None:
    model = fit(settings, sample, device="cuda", num_workers="auto")
    assert autocast_dtype(torch.device("cuda"), enabled=False) is None
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(records), model.predict_proba(records))


@pytest.mark.gpu
@needs_gpu
def test_gpu_training_keeps_the_data_on_the_device_and_auto_precision_off_when_small(
    settings, sample
) -> None:
    model = fit(settings, sample, device="cuda", mixed_precision="auto")
    assert model.history.resident
    assert model.history.precision == "fp32"  # batch 256, layers 64/32: bf16 would be slower
