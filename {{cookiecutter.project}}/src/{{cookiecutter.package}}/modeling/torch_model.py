"""A tabular MLP behind the same interface as ``SklearnModel``: fit / predict_proba / save / load.

Features come from the same ``build_features`` and ``make_preprocessor`` as the sklearn family, so
switching ``train.model`` changes the learner and nothing else. Training uses a GPU when one is
present (``train.torch.device``), with mixed precision there, and is bit-for-bit reproducible on
a CPU for a given seed.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from {{ cookiecutter.package }}.modeling.fast import record_features
from {{ cookiecutter.package }}.modeling.features import build_features, make_preprocessor
from {{ cookiecutter.package }}.modeling.meta import HISTORY_FILE, read_meta, write_meta

WEIGHTS_FILE = "weights.pt"
PREPROCESSOR_FILE = "preprocessor.joblib"


def resolve_device(setting: str) -> torch.device:
    """``auto`` is CUDA when a GPU is visible, else the CPU; ``cuda`` without a GPU is an error.

    params.yaml's settings already allow only auto, cpu and cuda; whether a GPU is there is
    only known here, at run time.
    """
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "train.torch.device is 'cuda' but torch sees no GPU (torch.cuda.is_available() is "
            "False); set it to 'auto' or 'cpu' in params.yaml, or install a CUDA build of torch."
        )
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


# `mixed_precision: auto` turns bf16 on only where it pays: on GPUs with bf16 tensor cores
# (compute capability 8.0 and up) and for matrices big enough to keep them busy. A small MLP at
# small batches is bound by kernel launches, and autocast adds cast kernels: measured on an H200
# at the default sizes (hidden 64/32, batch 256), bf16 ran at 0.9x fp32.
AUTO_MIN_BATCH = 1024
AUTO_MIN_WIDTH = 256


def mixed_precision_pays(capability: tuple[int, int], batch_size: int, width: int) -> bool:
    """The ``auto`` rule: bf16 tensor cores, batch >= 1024 rows and a layer >= 256 wide."""
    return capability >= (8, 0) and batch_size >= AUTO_MIN_BATCH and width >= AUTO_MIN_WIDTH


def autocast_dtype(
    device: torch.device, enabled: bool | str, batch_size: int = 0, width: int = 0
) -> torch.dtype | None:
    """bf16 on GPUs that support it (no loss scaling needed), else fp16; None means fp32.

    Only CUDA gets mixed precision: on a CPU the small matrices of a tabular MLP gain little
    from bf16 and would lose the exact reproducibility the CPU path promises. ``auto`` asks
    ``mixed_precision_pays`` with the batch size and the widest hidden layer.
    """
    if not enabled or device.type != "cuda":
        return None
    if enabled == "auto" and not mixed_precision_pays(
        torch.cuda.get_device_capability(device), batch_size, width
    ):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def resolve_workers(setting: int | str, device: torch.device) -> int:
    """``auto``: no worker processes on a CPU, a few on a GPU host.

    The features are one preprocessed tensor in memory, so a batch is a single indexing op. On a
    CPU, worker processes would only take cores from the training threads; next to a GPU they
    prepare and pin the next batches while the device computes.
    """
    if setting == "auto":
        return 0 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 2) // 2))
    return int(setting)


def resolve_threads(setting: int | str) -> int:
    """CPU threads for training; ``auto`` is every core.

    The matrices of a small tabular MLP are too small to split across cores: extra threads
    mostly wait on each other, and on a busy machine much longer.
    """
    if setting == "auto":
        return os.cpu_count() or 1
    return int(setting)


def build_network(inputs: int, hidden_sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, 1))  # one logit: the positive class
    return nn.Sequential(*layers)


@dataclass
class History:
    """Per-epoch losses and where early stopping ended; saved next to the weights."""

    device: str = "cpu"
    precision: str = "fp32"
    resident: bool = True  # the data stayed on the training device (no per-batch copies)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.val_loss)


class TorchModel:
    """A multilayer perceptron on one-hot and scaled features, trained with early stopping."""

    family: ClassVar[str] = "torch"

    def __init__(self, params: dict[str, Any], seed: int) -> None:
        self.params = params
        self.seed = seed
        self.preprocessor: ColumnTransformer = make_preprocessor()
        self.network: nn.Sequential | None = None
        self.history = History()
        self._inference: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._rows: Callable[[Sequence[Mapping[str, Any]]], np.ndarray] | None = None

    def fit(self, frame: pd.DataFrame, labels: np.ndarray) -> TorchModel:
        params = self.params
        device = resolve_device(params["device"])
        features = build_features(frame)
        train_x, val_x, train_y, val_y = train_test_split(
            features,
            np.asarray(labels),
            test_size=params["validation_fraction"],
            random_state=self.seed,
            stratify=labels,
        )
        # Scaling and category levels are learned from the training part only.
        train_t = self._tensor(self.preprocessor.fit_transform(train_x))
        val_t = self._tensor(self.preprocessor.transform(val_x))
        threads = resolve_threads(params["cpu_threads"])
        self.history = History()
        with _seeded(self.seed, device), _torch_threads(threads):
            network = build_network(train_t.shape[1], params["hidden_sizes"], params["dropout"])
            train = (train_t, _labels(train_y))
            val = (val_t, _labels(val_y))
            self.network = _train(network, train, val, params, device, self.seed, self.history)
        self._inference = None
        self._rows = None
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities of shape (rows, 2): columns are [negative, positive] (data.positive_class).

        Inference is a float64 NumPy pass over the trained weights: requests are small, NumPy
        does not wake torch's thread pool for a few rows, and float64 makes a row scored alone
        equal that row scored inside any batch (no serving skew).
        """
        values = np.asarray(self.preprocessor.transform(build_features(frame)), dtype=np.float64)
        return self._forward(values)

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``predict_proba`` for contract-valid JSON records, without building a DataFrame."""
        self._inference_layers()  # an untrained model says so before anything else
        if self._rows is None:
            self._rows = record_features(self.preprocessor)
        return self._forward(self._rows(records))

    def _forward(self, values: np.ndarray) -> np.ndarray:
        """The network in float64 NumPy on ready model inputs."""
        layers = self._inference_layers()
        values = _filled(values)
        for weight, bias in layers[:-1]:
            values = np.maximum(values @ weight + bias, 0.0)  # Linear, ReLU (dropout is off)
        weight, bias = layers[-1]
        positive = expit(values @ weight + bias)[:, 0]
        return np.column_stack([1.0 - positive, positive])

    def save(self, directory: Path) -> None:
        if self.network is None:
            raise ValueError("the torch model is not trained yet: call fit() before save().")
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: value.cpu() for name, value in self.network.state_dict().items()}
        torch.save(state, directory / WEIGHTS_FILE)
        joblib.dump(self.preprocessor, directory / PREPROCESSOR_FILE)
        (directory / HISTORY_FILE).write_text(json.dumps(asdict(self.history), indent=2) + "\n")
        write_meta(directory, self.family, self.params, self.seed)

    @classmethod
    def load(cls, directory: Path) -> TorchModel:
        meta = read_meta(directory)
        model = cls(meta["params"], meta["seed"])
        model.preprocessor = joblib.load(directory / PREPROCESSOR_FILE)
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        inputs = len(model.preprocessor.get_feature_names_out())
        settings = meta["params"]
        model.network = build_network(inputs, settings["hidden_sizes"], settings["dropout"])
        model.network.load_state_dict(state)
        history = directory / HISTORY_FILE
        if history.exists():
            model.history = History(**json.loads(history.read_text()))
        return model

    def _inference_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, bias) of each Linear layer in float64, in the order build_network made them."""
        if self.network is None:
            raise ValueError("the torch model is not trained yet: call fit() or load() first.")
        if self._inference is None:
            self._inference = [
                (
                    layer.weight.detach().cpu().double().numpy().T.copy(),
                    layer.bias.detach().cpu().double().numpy(),
                )
                for layer in self.network
                if isinstance(layer, nn.Linear)
            ]
        return self._inference

    @staticmethod
    def _tensor(values: Any) -> torch.Tensor:
        return torch.as_tensor(_filled(np.asarray(values, dtype=np.float32)))


def _filled(values: np.ndarray) -> np.ndarray:
    """A missing number (NaN after scaling) as 0, the scaled column's training mean: the
    scaler ignores NaN when it fits, and a network cannot take NaN as the trees do."""
    return np.nan_to_num(values, nan=0.0)


def _labels(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32)).unsqueeze(1)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch for one fit without changing the caller's random state or global flags.

    On a CPU, deterministic algorithms make the same seed give the same weights; on CUDA some
    kernels have no deterministic version, so there the seed only fixes initialisation and order.
    """
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(deterministic or device.type == "cpu")
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


class _Batches(Sampler[torch.Tensor]):
    """Row indices a whole batch at a time, so a batch is one tensor gather.

    A default DataLoader fetches and collates ``batch_size`` single rows per batch, which costs
    more than the MLP's own step on data that is already one tensor in memory.
    """

    def __init__(
        self,
        rows: int,
        batch_size: int,
        generator: torch.Generator | None,
        device: torch.device | None = None,
    ) -> None:
        self.rows, self.batch_size, self.generator = rows, batch_size, generator
        self.device = device or torch.device("cpu")  # where the indices are made

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.generator is None:
            order = torch.arange(self.rows, device=self.device)
        else:
            order = torch.randperm(self.rows, generator=self.generator, device=self.device)
        return iter(order.split(self.batch_size))

    def __len__(self) -> int:
        return -(-self.rows // self.batch_size)


class _Resident:
    """Batches gathered from tensors that already sit on the training device.

    When the data fits on the GPU it is copied there once; each batch is then one gather with
    an index made on the device, instead of a host-to-device copy per batch. On a CPU this is
    the same loop without the copy, with the same permutations as before (same seed, same
    weights).
    """

    def __init__(
        self, data: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int | None
    ) -> None:
        self.x, self.y = data
        device = self.x.device
        generator = None if seed is None else torch.Generator(device).manual_seed(seed)
        self.sampler = _Batches(len(self.x), batch_size, generator, device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for rows in self.sampler:
            yield self.x[rows], self.y[rows]


# Share of the GPU's free memory that resident training data may take; the rest is left to the
# network, its activations and the optimizer.
RESIDENT_SHARE = 0.5


def fits_on_device(data: list[torch.Tensor], device: torch.device) -> bool:
    """Whether the tensors fit in the device's free memory with room to train (CPU: always)."""
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return sum(t.element_size() * t.nelement() for t in data) <= RESIDENT_SHARE * free


def _feed(
    data: tuple[torch.Tensor, torch.Tensor],
    batch_size: int,
    shuffle: bool,
    workers: int,
    device: torch.device,
    seed: int,
    resident: bool,
) -> _Resident | DataLoader:
    """Batches for one pass: gathered on the device when resident, else streamed to it."""
    if resident:
        return _Resident(tuple(t.to(device) for t in data), batch_size, seed if shuffle else None)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        TensorDataset(*data),
        sampler=_Batches(len(data[0]), batch_size, generator),
        batch_size=None,  # the sampler yields whole batches
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )


def _train(
    network: nn.Sequential,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    params: dict[str, Any],
    device: torch.device,
    seed: int,
    history: History,
) -> nn.Sequential:
    """Epochs until the validation loss stops improving; returns the best epoch's weights."""
    workers = resolve_workers(params["num_workers"], device)
    batch_size = int(params["batch_size"])
    width = max(params["hidden_sizes"])
    amp = autocast_dtype(device, params["mixed_precision"], batch_size, width)
    history.device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    history.precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp]
    network = network.to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(),
        lr=params["learning_rate"],
        weight_decay=params["weight_decay"],
        # One kernel for all parameters on a GPU, where a tiny MLP's step is launch-bound.
        fused=device.type == "cuda",
    )
    # fp16 has a narrow range: scale the loss so small gradients do not flush to zero.
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    loss_fn = nn.BCEWithLogitsLoss()
    resident = fits_on_device([*train, *val], device)
    history.resident = resident
    train_batches = _feed(train, batch_size, True, workers, device, seed, resident)
    val_batches = _feed(val, 4 * batch_size, False, 0, device, seed, resident)
    max_epochs, patience = params["max_epochs"], params["patience"]
    best_loss, best_state = float("inf"), None
    with _progress() as progress:
        task = progress.add_task("training", total=max_epochs, status="")
        for epoch in range(1, max_epochs + 1):
            network.train()
            # Summed on the device: reading a GPU value every batch would wait for the GPU.
            total = torch.zeros((), device=device)
            for x, y in train_batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with _autocast(device, amp):
                    loss = loss_fn(network(x), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.detach().float() * len(x)
            history.train_loss.append(round(total.item() / len(train[0]), 6))
            history.val_loss.append(round(_evaluate(network, val_batches, loss_fn, device, amp), 6))
            if history.val_loss[-1] < best_loss:
                best_loss, history.best_epoch = history.val_loss[-1], epoch
                best_state = copy.deepcopy(network.state_dict())
            _log_epoch(history, epoch)
            progress.update(
                task,
                advance=1,
                status=f"val loss {history.val_loss[-1]:.4f} (best {best_loss:.4f})",
            )
            if epoch - history.best_epoch >= patience:
                history.stopped_early = epoch < max_epochs
                break
    assert best_state is not None  # max_epochs >= 1, so at least one epoch was scored
    network.load_state_dict(best_state)
    return network.eval()


def _evaluate(
    network: nn.Module,
    batches: _Resident | DataLoader,
    loss_fn: nn.Module,
    device: torch.device,
    amp: torch.dtype | None,
) -> float:
    network.eval()
    total, rows = 0.0, 0
    with torch.inference_mode():
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device, amp):
                logits = network(x)
            total += loss_fn(logits.float(), y).item() * len(x)
            rows += len(x)
    return total / rows


def _log_epoch(history: History, epoch: int) -> None:
    """Per-epoch losses into the active MLflow run, when a caller started one."""
    mlflow = sys.modules.get("mlflow")  # no run can be active if mlflow was never imported
    if mlflow is None or mlflow.active_run() is None:
        return
    mlflow.log_metrics(
        {"train_loss": history.train_loss[-1], "val_loss": history.val_loss[-1]}, step=epoch
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs {task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
