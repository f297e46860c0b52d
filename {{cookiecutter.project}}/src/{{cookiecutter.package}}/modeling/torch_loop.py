"""The torch family's epochs: batches, per-epoch validation, early stopping, the training record.

Each epoch feeds shuffled batches to the training step and the validation chunks to the
validation pass (modeling/torch_steps.py: eager, or captured as CUDA graphs). Data that fits on
the GPU is copied there once and gathered by index; larger data streams from pinned host memory.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from {{ cookiecutter.package }}.modeling.torch_steps import (
    Plan,
    Stepper,
    batch_shapes,
    build_steps,
    choose_plan,
    make_optimizer,
)

Data = tuple[torch.Tensor, torch.Tensor]


@dataclass
class History:
    """Per-epoch losses, where early stopping ended and how training ran; saved with the weights."""

    device: str = "cpu"
    precision: str = "fp32"
    resident: bool = True  # the data stayed on the training device (no per-batch copies)
    path: str = "eager"  # "captured" (CUDA graphs) or "eager"
    path_reason: str = ""  # why eager, or which shapes were captured
    cpu_threads: int = 1
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.val_loss)

    def record(self) -> dict[str, Any]:
        """How this model trained, for reports/training.json and the PR report."""
        return {
            "device": self.device,
            "path": self.path,
            "path_reason": self.path_reason,
            "precision": self.precision,
            "cpu_threads": self.cpu_threads,
        }


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
        self, data: Data, batch_size: int, seed: int | None, into: dict[int, Data] | None = None
    ) -> None:
        self.x, self.y = data
        device = self.x.device
        generator = None if seed is None else torch.Generator(device).manual_seed(seed)
        self.sampler = _Batches(len(self.x), batch_size, generator, device)
        self.into = into or {}  # a captured step's input buffers, by batch size

    def __iter__(self) -> Iterator[Data]:
        for rows in self.sampler:
            if len(rows) not in self.into:
                yield self.x[rows], self.y[rows]
                continue
            # Gathered straight into the captured step's buffers: no copy kernels per batch.
            x, y = self.into[len(rows)]
            torch.index_select(self.x, 0, rows, out=x)
            torch.index_select(self.y, 0, rows, out=y)
            yield x, y


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
    data: Data,
    batch_size: int,
    shuffle: bool,
    workers: int,
    device: torch.device,
    seed: int,
    resident: bool,
    into: dict[int, Data] | None = None,
) -> _Resident | DataLoader:
    """Batches for one pass: gathered on the device when resident, else streamed to it."""
    if resident:
        on_device = (data[0].to(device), data[1].to(device))
        return _Resident(on_device, batch_size, seed if shuffle else None, into)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        TensorDataset(*data),
        sampler=_Batches(len(data[0]), batch_size, generator),
        batch_size=None,  # the sampler yields whole batches
        num_workers=workers,
        persistent_workers=workers > 0,
        # Pinned pages copy to the GPU asynchronously, while the workers prefetch the next ones.
        pin_memory=device.type == "cuda",
    )


def train_network(
    network: nn.Module,
    train: Data,
    val: Data,
    params: dict[str, Any],
    device: torch.device,
    seed: int,
    history: History,
    *,
    workers: int = 0,
    resident: bool | None = None,
    plan: Plan | None = None,
) -> nn.Module:
    """Epochs until the validation loss stops improving; returns the best epoch's weights.

    ``workers`` are DataLoader processes for streamed data. ``resident`` and ``plan`` are decided
    here from the device and params when None; tests and benchmarks set them to run one path.
    """
    batch_size = int(params["batch_size"])
    amp = autocast_dtype(device, params["mixed_precision"], batch_size, max(params["hidden_sizes"]))
    history.device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    history.precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp]
    plan = plan or choose_plan(params["capture"], device, amp)
    network = network.to(device)
    stepper = Stepper(
        network,
        make_optimizer(network, params, device, plan),
        # fp16 has a narrow range: scale the loss so small gradients do not flush to zero.
        torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        amp,
        torch.zeros((), device=device),  # summed on the device: no wait for the GPU per batch
        torch.zeros((), device=device),
    )
    history.resident = fits_on_device([*train, *val], device) if resident is None else resident
    val_chunk = 4 * batch_size
    shapes = (batch_shapes(len(train[0]), batch_size), batch_shapes(len(val[0]), val_chunk))
    train_step, val_step, plan = build_steps(stepper, plan, train, val, shapes, params["capture"])
    history.path = "captured" if plan.captured else "eager"
    history.path_reason = plan.reason
    _say(history)
    # A captured step (Static) has input buffers that resident batches are gathered into.
    into = getattr(train_step, "buffers", None), getattr(val_step, "buffers", None)
    resident = history.resident
    train_batches = _feed(train, batch_size, True, workers, device, seed, resident, into[0])
    val_batches = _feed(val, val_chunk, False, 0, device, seed, resident, into[1])
    max_epochs, patience = params["max_epochs"], params["patience"]
    best_loss, best_state = float("inf"), None
    with _progress() as progress:
        task = progress.add_task("training", total=max_epochs, status="")
        for epoch in range(1, max_epochs + 1):
            network.train()
            stepper.total.zero_()
            for x, y in train_batches:
                train_step(x, y)
            history.train_loss.append(round(stepper.total.item() / len(train[0]), 6))
            network.eval()
            stepper.val_total.zero_()
            for x, y in val_batches:
                val_step(x, y)
            history.val_loss.append(round(stepper.val_total.item() / len(val[0]), 6))
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


def _say(history: History) -> None:
    """The one line that says how this fit trains, and why when it is the eager loop."""
    where = f"{history.precision} on {history.device}"
    if history.device == "cpu":
        where += f", {history.cpu_threads} thread{'s' if history.cpu_threads > 1 else ''}"
    if history.path == "captured":
        line = f"training: captured step ({history.path_reason}), {where}"
    else:
        line = f"training: eager loop because {history.path_reason}; {where}"
    Console(stderr=True, soft_wrap=True).print(line, highlight=False, markup=False)


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
