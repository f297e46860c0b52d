"""The torch family's training step and validation pass, eager or captured as CUDA graphs.

At the default sizes a step of the MLP is a few dozen tiny kernels, and Python launching them
one by one is slower than the GPU running them. On CUDA the step (forward, loss, backward,
optimizer step) and the validation pass are therefore captured once per batch shape and replayed:
one launch per batch. The captured program works on input buffers at fixed addresses: resident
batches are gathered into them by row index, streamed ones copied in. The last partial batch
gets a second captured shape, so
it is the same rows through the same kernels as in the eager loop: the same loss and the same
dropout random numbers, with no padded rows for any layer to see.

Anything that cannot be captured (a CPU run, a torch too old, fp16's GradScaler, an operation in
the network that waits for the GPU) runs the eager loop, and the plan says why.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# What this capture uses (torch.cuda.graph on a given stream, fused AdamW with capturable=True,
# dropout that replays the eager random stream, torch.amp) is all in torch 2.4, the project's
# floor; older versions are not tried.
MIN_CAPTURE_TORCH = (2, 4)
# Eager steps per shape before capture: the first calls initialise cuBLAS handles, autograd's
# streams and the optimizer state, none of which may happen inside a capture.
WARMUP_STEPS = 3

Batch = Callable[[torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class Plan:
    """How the epochs run: ``captured`` steps on static buffers, or the eager loop."""

    captured: bool
    reason: str  # why eager; for captured runs, filled in with the captured shapes
    graphs: bool = True  # False: the captured program called directly (CPU tests of its logic)


def torch_version(version: str) -> tuple[int, int]:
    """(major, minor) of a torch version string such as ``2.13.0+cu130``."""
    major, minor = re.findall(r"\d+", version)[:2]
    return int(major), int(minor)


def choose_plan(
    setting: bool | str,
    device: torch.device,
    amp: torch.dtype | None,
    version: str = torch.__version__,
) -> Plan:
    """``train.torch.capture``: auto captures where it can; true fails where it cannot."""
    if setting is False:
        return Plan(False, "train.torch.capture is false")
    blocker = capture_blocker(device, amp, version)
    if blocker is None:
        return Plan(True, "CUDA graphs")
    if setting is True:
        raise ValueError(
            f"train.torch.capture is true but {blocker}; set it to auto to train with the "
            "eager loop where capture is not possible."
        )
    return Plan(False, blocker)


def capture_blocker(device: torch.device, amp: torch.dtype | None, version: str) -> str | None:
    """Why the step cannot be captured, known before trying; None when it can be tried."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device and this run is on the CPU"
    if torch_version(version) < MIN_CAPTURE_TORCH:
        floor = ".".join(map(str, MIN_CAPTURE_TORCH))
        return f"torch {version} is older than {floor}, the oldest this capture is written for"
    if amp == torch.float16:
        # The scaler skips steps and rescales; bf16 (what `auto` picks) needs none of that.
        return "fp16 needs a GradScaler, which the captured step does not include"
    return None


def batch_shapes(rows: int, batch_size: int) -> list[int]:
    """The batch sizes of one pass over ``rows``: full batches, then the remainder if any."""
    shapes = [batch_size] if rows >= batch_size else []
    return [*shapes, rows % batch_size] if rows % batch_size else shapes


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    # No cast cache: a capture must not keep tensors cached outside the graph, and the eager
    # loop uses the same setting so that both compute the same numbers.
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


@dataclass
class Stepper:
    """What one training step needs; ``total`` sums the batch losses on the device."""

    network: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    total: torch.Tensor
    val_total: torch.Tensor

    def eager_train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """``train`` on a batch from anywhere (a no-op move for resident data)."""
        device = self.total.device
        self.train(x.to(device, non_blocking=True), y.to(device, non_blocking=True))

    def eager_validate(self, x: torch.Tensor, y: torch.Tensor) -> None:
        device = self.total.device
        self.validate(x.to(device, non_blocking=True), y.to(device, non_blocking=True))

    def train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Forward, loss, backward, optimizer step: the same code eager and captured."""
        with autocast(x.device, self.amp):
            loss = nn.functional.binary_cross_entropy_with_logits(self.network(x), y)
        # Zeroed in place, not set to None: a captured step must write the same grad tensors.
        self.optimizer.zero_grad(set_to_none=False)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.total += loss.detach().float() * len(x)

    def validate(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Adds the summed validation loss of one chunk to ``val_total``."""
        with torch.no_grad(), autocast(x.device, self.amp):
            logits = self.network(x)
        with torch.no_grad():
            self.val_total += nn.functional.binary_cross_entropy_with_logits(
                logits.float(), y, reduction="sum"
            )


class Static:
    """``fn(x, y)`` on input buffers at fixed addresses, one pair per batch shape.

    A CUDA graph replays its kernels on the memory it was captured with, so a batch is copied
    into its shape's buffers and that shape's graph replayed. Without graphs ``fn`` is called on
    the same buffers, which is how the CPU tests run this program.
    """

    def __init__(
        self,
        fn: Batch,
        shapes: list[int],
        example: tuple[torch.Tensor, torch.Tensor],
        device: torch.device,
    ) -> None:
        self.fn = fn
        x, y = example
        # Real rows, not zeros, so that the warm-up steps compute ordinary numbers.
        self.buffers = {
            rows: (x[:rows].to(device).clone(), y[:rows].to(device).clone()) for rows in shapes
        }
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One batch, copied in from the device or from (pinned) host memory, then run.

        Resident batches are gathered straight into the buffers (``_Resident``), so there is
        nothing to copy.
        """
        static_x, static_y = self.buffers[len(x)]
        if x.data_ptr() != static_x.data_ptr():
            static_x.copy_(x, non_blocking=True)
            static_y.copy_(y, non_blocking=True)
        graph = self.graphs.get(len(x))
        if graph is None:
            self.fn(static_x, static_y)
        else:
            graph.replay()

    def warm_up(self) -> None:
        for _ in range(WARMUP_STEPS):
            for static_x, static_y in self.buffers.values():
                self.fn(static_x, static_y)

    def capture(self, stream: torch.cuda.Stream) -> None:
        for rows, (static_x, static_y) in self.buffers.items():
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                self.fn(static_x, static_y)
            self.graphs[rows] = graph

    @property
    def shapes(self) -> str:
        return " and ".join(f"{rows:,}" for rows in self.buffers)


def build_steps(
    stepper: Stepper,
    plan: Plan,
    train_example: tuple[torch.Tensor, torch.Tensor],
    val_example: tuple[torch.Tensor, torch.Tensor],
    shapes: tuple[list[int], list[int]],
    setting: bool | str,
) -> tuple[Batch, Batch, Plan]:
    """The train and validation calls for ``plan``; a capture that fails falls back to eager."""
    if not plan.captured:
        return stepper.eager_train, stepper.eager_validate, plan
    device = stepper.total.device
    train = Static(stepper.train, shapes[0], train_example, device)
    validate = Static(stepper.validate, shapes[1], val_example, device)
    described = Plan(
        True,
        f"CUDA graphs: train step at {train.shapes} rows, validation at {validate.shapes} rows",
        plan.graphs,
    )
    if not plan.graphs:
        return train, validate, described
    try:
        _capture(stepper, train, validate)
    except Exception as error:  # whatever the network does that a capture cannot hold
        while error.__context__ is not None:  # the first failure, not the capture's ending
            error = error.__context__
        message = (str(error).strip() or "no message").splitlines()[0]
        why = f"the step could not be captured ({type(error).__name__}: {message})"
        if setting is True:
            raise ValueError(f"train.torch.capture is true but {why}") from None
        for group in stepper.optimizer.param_groups:
            group["capturable"] = False  # eager from here: the plain fused step
        return stepper.eager_train, stepper.eager_validate, Plan(False, why)
    return train, validate, described


def _capture(stepper: Stepper, train: Static, validate: Static) -> None:
    """Warm up on a side stream, put everything back as it was, then capture each shape."""
    network, device = stepper.network, stepper.total.device
    weights = {name: value.clone() for name, value in network.state_dict().items()}
    rng = torch.cuda.get_rng_state(device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    try:
        with torch.cuda.stream(stream), warnings.catch_warnings():
            # capturable=True warns when stepped uncaptured, which the warm-up does on purpose.
            warnings.simplefilter("ignore", UserWarning)
            network.train()
            train.warm_up()
            network.eval()
            validate.warm_up()
        torch.cuda.current_stream(device).wait_stream(stream)
        _restore(stepper, weights, rng)
        # A capture records kernels without running them: weights, optimizer state and the
        # random stream stay as restored, so the first replay computes the first eager step.
        network.train()
        train.capture(stream)
        network.eval()
        validate.capture(stream)
    except Exception:
        _restore(stepper, weights, rng)  # the eager loop then starts where it would have
        raise
    finally:
        network.train()


def _restore(stepper: Stepper, weights: dict[str, torch.Tensor], rng: torch.Tensor) -> None:
    """Undo the warm-up in place (captured kernels keep the addresses of these tensors)."""
    device = stepper.total.device
    torch.cuda.synchronize(device)
    stepper.network.load_state_dict(weights)  # copies into the existing tensors
    with torch.no_grad():
        for state in stepper.optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    value.zero_()  # AdamW's fresh state: step 0, zero moments
        stepper.total.zero_()
        stepper.val_total.zero_()
    torch.cuda.set_rng_state(rng, device)


def make_optimizer(
    network: nn.Module, params: dict[str, Any], device: torch.device, plan: Plan
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        network.parameters(),
        lr=params["learning_rate"],
        weight_decay=params["weight_decay"],
        # One kernel for all parameters on a GPU; capturable keeps its step count on the device.
        # Both run the same fused kernel, so eager and captured steps compute the same numbers.
        fused=device.type == "cuda",
        capturable=plan.captured and plan.graphs,
    )
