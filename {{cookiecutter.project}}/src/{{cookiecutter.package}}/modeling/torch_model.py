"""A tabular MLP behind the same interface as ``SklearnModel``: fit / predict_proba / save / load.

Features come from the same ``build_features`` and ``make_preprocessor`` as the sklearn family, so
switching ``train.model`` changes the learner and nothing else. Training uses a GPU when one is
present (``train.torch.device``), with its step captured as CUDA graphs there, and is
bit-for-bit reproducible on a CPU for a given seed. The epochs are in modeling/torch_loop.py, the
step itself (eager or captured) in modeling/torch_steps.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from torch import nn

from {{ cookiecutter.package }}.modeling.fast import record_features
from {{ cookiecutter.package }}.modeling.features import build_features, make_preprocessor
from {{ cookiecutter.package }}.modeling.meta import HISTORY_FILE, read_meta, write_meta
from {{ cookiecutter.package }}.modeling.torch_loop import History, train_network

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


def resolve_workers(setting: int | str, device: torch.device) -> int:
    """``auto``: no worker processes on a CPU, a few on a GPU host.

    The features are one preprocessed tensor in memory, so a batch is a single indexing op. On a
    CPU, worker processes would only take cores from the training threads; next to a GPU they
    prepare and pin the next batches while the device computes.
    """
    if setting == "auto":
        return 0 if device.type == "cpu" else min(4, max(1, usable_cores() // 2))
    return int(setting)


def resolve_threads(setting: int | str, usable: int) -> int:
    """CPU threads for training: ``auto`` is one; a number is capped at the usable cores.

    The matrices of a small tabular MLP are too small to split across cores: extra threads
    mostly wait on each other, and when another process keeps a core busy they wait for it by
    whole scheduler slices. Measured at the default sizes on 2 cores with another process
    keeping one busy, one thread trained 246,000 samples/s and two 14,000; idle, two were 6 %
    faster on a quiet machine and 24x slower on a shared one. So ``auto`` is one thread whatever
    the machine. More threads than usable cores can only oversubscribe them.
    """
    return 1 if setting == "auto" else min(int(setting), usable)


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, within its cgroup's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cgroup_quota()
    return max(1, min(cores or 1, quota or cores or 1))


def cgroup_quota(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Whole cores allowed by the CPU quotas of this process's cgroup and its parents, if any.

    cgroup v2 keeps the quota in ``cpu.max``; v1 in ``cpu.cfs_quota_us`` over the period. A
    container often sees its own cgroup as the root, so the root counts too.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    found = []
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        if not controllers:  # v2: one hierarchy
            bases, names = [root], ("cpu.max", None)
        elif "cpu" in controllers.split(","):  # v1: mounted as cpu,cpuacct or cpu
            bases = [root / controllers, root / "cpu"]
            names = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        for base in bases:
            folder = base / path.lstrip("/")
            for level in [folder, *folder.parents]:
                if not level.is_relative_to(base):
                    break
                found.append(_quota_in(level, *names))
    limits = [cores for cores in found if cores is not None]
    return min(limits) if limits else None


def _quota_in(folder: Path, quota: str, period: str | None) -> int | None:
    try:
        words = (folder / quota).read_text().split()
        if period is not None:
            words = [words[0], (folder / period).read_text().strip()]
    except OSError:
        return None
    return quota_cores(*words[:2])


def quota_cores(quota: str, period: str) -> int | None:
    """``150000 100000`` is 2 cores (a part-core still runs a thread); ``max`` or -1: no quota."""
    if quota in ("max", "-1"):
        return None
    return max(1, -(-int(quota) // int(period)))


def build_network(inputs: int, hidden_sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, 1))  # one logit: the positive class
    return nn.Sequential(*layers)


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
        threads = resolve_threads(params["cpu_threads"], usable_cores())
        self.history = History(cpu_threads=threads)
        with _seeded(self.seed, device), _torch_threads(threads):
            network = build_network(train_t.shape[1], params["hidden_sizes"], params["dropout"])
            train = (train_t, _labels(train_y))
            val = (val_t, _labels(val_y))
            self.network = train_network(
                network,
                train,
                val,
                params,
                device,
                self.seed,
                self.history,
                workers=resolve_workers(params["num_workers"], device),
            )
        self._inference = None
        self._rows = None
        return self

    def training_record(self) -> dict[str, Any]:
        """Device, precision and path (captured or eager, and why) of the last fit."""
        return self.history.record()

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
