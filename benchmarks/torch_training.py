"""Training throughput of the torch family (samples/s at a fixed batch size).

Bakes a ``model=torch`` project, builds its features from the bundled data, and times epochs of
our training loop against a plain hand-written torch loop measured in the same run, so the
ratios hold across machines. CPU rows: one thread against all usable cores, idle and with
another process keeping one core busy, and what ``cpu_threads: auto`` picks. On a CUDA machine
also: the hand-written step captured whole in one CUDA graph (the limit), the same step under
``torch.compile(mode="reduce-overhead")``, our loop with its defaults (the step captured),
with capture off, in fp32 and with mixed precision forced, and, on 1M rows (the bundled rows
drawn with replacement), our loop on the GPU against our loop on all usable CPU cores. Without
CUDA those rows say "not measured: no GPU here".

    python benchmarks/torch_training.py [--epochs 10] [--gpu-epochs 60] [--repeats 5]
        [--large-rows 1000000] [--large-epochs 2]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bakery import bake
from report import table, write_section

BATCH_SIZE = 256
NO_GPU = "not measured: no GPU here"


def load_project(tmp: Path):
    """The baked project's torch modules and its training features as tensors."""
    project = bake(tmp, project="bench-torch", model="torch")
    sys.path.insert(0, str(project / "src"))
    package = "bench_torch"
    config = importlib.import_module(f"{package}.config")
    data = importlib.import_module(f"{package}.data")
    schema = importlib.import_module(f"{package}.contract.schema")
    model = importlib.import_module(f"{package}.modeling.torch_model")
    loop = importlib.import_module(f"{package}.modeling.torch_loop")
    settings = config.load_settings(project / "params.yaml")
    frame = data.load_source(settings.data.source)
    features = importlib.import_module(f"{package}.modeling.features")
    preprocessor = features.make_preprocessor()
    x = preprocessor.fit_transform(features.build_features(schema.inputs(frame)))
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(data.labels(frame, settings.data), dtype=torch.float32).unsqueeze(1)
    return model, loop, settings.train.torch.model_dump(), x, y


def hand_written(
    model, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int, device: str = "cpu"
) -> None:
    """The loop people write first: shuffle indices, slice, step. No DataLoader, no AMP.

    On CUDA the data is moved to the GPU once and the order drawn there (a resident loop).
    """
    torch.manual_seed(0)
    x, y = x.to(device), y.to(device)
    network = model.build_network(x.shape[1], settings["hidden_sizes"], settings["dropout"])
    network = network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings["learning_rate"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        order = torch.randperm(len(x), device=device)
        for start in range(0, len(x), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            loss = loss_fn(network(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def hand_captured(model, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    """The limit: the hand-written step (forward, loss, backward, fused AdamW) captured whole
    in one CUDA graph that also gathers its batch from a device-side order and counts its step,
    so an epoch is one replay per batch and nothing else. The last partial batch is dropped."""
    torch.manual_seed(0)
    x, y = x.cuda(), y.cuda()
    network = model.build_network(x.shape[1], settings["hidden_sizes"], settings["dropout"])
    network = network.cuda()
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=settings["learning_rate"], fused=True, capturable=True
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order = torch.randperm(len(x), device="cuda")
    step = torch.zeros((), dtype=torch.long, device="cuda")
    offsets = torch.arange(BATCH_SIZE, device="cuda")

    def one_step() -> None:
        rows = order[step * BATCH_SIZE + offsets]
        loss_fn(network(x[rows]), y[rows]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
        step.add_(1)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # capturable=True warns when stepped uncaptured
        for _ in range(3):
            one_step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        one_step()
    for _ in range(epochs):
        order.copy_(torch.randperm(len(x), device="cuda"))
        step.zero_()
        for _ in range(len(x) // BATCH_SIZE):
            graph.replay()


class Compiled:
    """The hand-written step under ``torch.compile(mode="reduce-overhead")`` (CUDA graphs made
    by Inductor), built on the first call, which pays the compile; later calls reuse it."""

    def __init__(self, model, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int):
        self.model, self.settings, self.epochs = model, settings, epochs
        self.x, self.y = x.cuda(), y.cuda()
        self.step: Callable[[torch.Tensor, torch.Tensor], None] | None = None
        self.failed = ""

    def build(self) -> None:
        torch.manual_seed(0)
        settings = self.settings
        network = self.model.build_network(
            self.x.shape[1], settings["hidden_sizes"], settings["dropout"]
        ).cuda()
        optimizer = torch.optim.AdamW(network.parameters(), lr=settings["learning_rate"])
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
            loss_fn(network(xb), yb).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)  # gradients stay at fixed addresses

        self.step = torch.compile(step, mode="reduce-overhead")

    def __call__(self) -> None:
        if self.failed:
            return
        try:
            if self.step is None:
                self.build()
            for _ in range(self.epochs):
                order = torch.randperm(len(self.x), device="cuda")
                for start in range(0, len(self.x) - BATCH_SIZE + 1, BATCH_SIZE):
                    rows = order[start : start + BATCH_SIZE]
                    torch.compiler.cudagraph_mark_step_begin()
                    self.step(self.x[rows], self.y[rows])
        except Exception as error:  # a compiler failure is a result of this row, not a crash
            self.failed = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:80]}"


def per_row_loader(model, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    """A default DataLoader: fetches and collates BATCH_SIZE single rows per batch."""
    torch.manual_seed(0)
    network = model.build_network(x.shape[1], settings["hidden_sizes"], settings["dropout"])
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings["learning_rate"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True)
    for _ in range(epochs):
        for xb, yb in loader:
            loss = loss_fn(network(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def ours(loop, model, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int, device: str):
    """Our loop (train_network): the step captured on CUDA where it can be, AMP where it pays,
    per-epoch validation."""
    params = {**settings, "max_epochs": epochs, "patience": epochs + 1, "batch_size": BATCH_SIZE}
    split = len(x) * 9 // 10
    network = model.build_network(x.shape[1], settings["hidden_sizes"], settings["dropout"])
    train, val = (x[:split], y[:split]), (x[split:], y[split:])
    history = loop.History()
    loop.train_network(network, train, val, params, torch.device(device), 0, history)
    return history


@dataclass
class Case:
    label: str
    device: str
    run: Callable[[], object]
    samples: int
    threads: int = 1
    busy_core: bool = False  # another process keeps one core busy, as a parallel test would


def timed(case: Case) -> float:
    """Seconds for one run of ``case``, with its thread count and competing load in place."""
    previous = torch.get_num_threads()
    torch.set_num_threads(case.threads)
    busy = None
    if case.busy_core:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)  # let it get scheduled before the clock starts
    try:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        case.run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)
        if busy is not None:
            busy.kill()
            busy.wait()


def median_seconds(cases: list[Case], repeats: int) -> tuple[list[float], list[float]]:
    """Median time of each case, and its first run (warm-up: first-call allocations, captures,
    compiles). Rounds interleave the cases, so that a burst of other work on the machine slows
    all of them alike instead of one."""
    first = [timed(case) for case in cases]
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(repeats):
        for index, case in enumerate(cases):
            times[index].append(timed(case))
    return [statistics.median(values) for values in times], first


def cpu_cases(model, loop, settings, x, y, epochs: int, cores: int) -> list[Case]:
    ours_samples = epochs * (len(x) * 9 // 10)  # our loop trains on 90%, validates on 10%
    plain_samples = epochs * len(x)
    plain = functools.partial(hand_written, model, settings, x, y, epochs)
    per_row = functools.partial(per_row_loader, model, settings, x, y, epochs)
    our_cpu = functools.partial(ours, loop, model, settings, x, y, epochs, "cpu")
    auto = model.resolve_threads("auto", cores)
    return [
        Case("hand-written loop, 1 thread", "cpu", plain, plain_samples),
        Case(f"hand-written loop, all {cores} usable cores", "cpu", plain, plain_samples, cores),
        Case("default DataLoader (per-row collation), 1 thread", "cpu", per_row, plain_samples),
        Case(f"our loop, defaults (cpu_threads auto = {auto})", "cpu", our_cpu, ours_samples, auto),
        Case(f"our loop, all {cores} usable cores", "cpu", our_cpu, ours_samples, cores),
        Case("our loop, 1 thread, one core busy", "cpu", our_cpu, ours_samples, 1, True),
        Case(
            f"our loop, cpu_threads auto (= {auto}), one core busy",
            "cpu",
            our_cpu,
            ours_samples,
            auto,
            True,
        ),
        Case(
            f"our loop, all {cores} usable cores, one core busy",
            "cpu",
            our_cpu,
            ours_samples,
            cores,
            True,
        ),
    ]


def gpu_cases(model, loop, settings, x, y, args, cores: int) -> list[Case]:
    epochs, name = args.gpu_epochs, f"cuda ({torch.cuda.get_device_name(0)})"
    ours_samples = epochs * (len(x) * 9 // 10)
    full_batches = epochs * (len(x) // BATCH_SIZE) * BATCH_SIZE  # the partial batch is dropped
    resident = functools.partial(hand_written, model, settings, x, y, epochs, "cuda")
    limit = functools.partial(hand_captured, model, settings, x, y, epochs)
    cases = [
        Case("hand-written loop on GPU, data resident", name, resident, epochs * len(x)),
        Case("hand-written step captured whole (the limit)", name, limit, full_batches),
        Case(
            'hand-written step, torch.compile(mode="reduce-overhead")',
            name,
            Compiled(model, settings, x, y, epochs),
            full_batches,
        ),
    ]
    for label, overrides in [
        ("defaults (captured, mixed_precision auto)", {}),
        ("capture false (eager)", {"capture": False}),
        ("fp32", {"mixed_precision": False}),
        ("mixed precision forced", {"mixed_precision": True}),
    ]:
        run = functools.partial(ours, loop, model, {**settings, **overrides}, x, y, epochs, "cuda")
        cases.append(Case(f"our loop on GPU, {label}", name, run, ours_samples))
    picks = torch.randint(len(x), (args.large_rows,), generator=torch.Generator().manual_seed(0))
    big_x, big_y = x[picks], y[picks]
    big = args.large_epochs * (args.large_rows * 9 // 10)
    large = f"{args.large_rows:,} rows"
    on = functools.partial(ours, loop, model, settings, big_x, big_y, args.large_epochs)
    return [
        *cases,
        Case(f"our loop on GPU, defaults, {large}", name, functools.partial(on, "cuda"), big),
        Case(
            f"our loop on all {cores} usable CPU cores, {large}",
            "cpu",
            functools.partial(on, "cpu"),
            big,
            cores,
        ),
    ]


def targets(rate: dict[str, float], cases: list[Case], args, cores: int) -> list[list[str]]:
    """[target, measured, goal, met] for every target of the torch training issue."""

    def ratio(numerator: str, denominator: str) -> float | None:
        if numerator not in rate or denominator not in rate:
            return None
        return rate[numerator] / rate[denominator]

    large = f"{args.large_rows:,} rows"
    auto = next(c.label for c in cases if "cpu_threads auto (=" in c.label)
    rows = [
        (
            "our defaults vs the hand-written step captured whole, batch 256",
            ratio(
                "our loop on GPU, defaults (captured, mixed_precision auto)",
                "hand-written step captured whole (the limit)",
            ),
            0.8,
        ),
        (
            f"our defaults on GPU vs our loop on all {cores} usable CPU cores, {large}",
            ratio(
                f"our loop on GPU, defaults, {large}",
                f"our loop on all {cores} usable CPU cores, {large}",
            ),
            10.0,
        ),
        (
            "mixed precision auto vs fp32",
            ratio(
                "our loop on GPU, defaults (captured, mixed_precision auto)",
                "our loop on GPU, fp32",
            ),
            0.98,
        ),
        (
            "cpu_threads auto vs one thread, one core busy",
            ratio(auto, "our loop, 1 thread, one core busy"),
            0.8,
        ),
    ]
    return [
        [text, NO_GPU, f">= {goal}x", "-"]
        if value is None
        else [text, f"{value:.2f}x", f">= {goal}x", "yes" if value >= goal else "**no**"]
        for text, value, goal in rows
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    # A GPU trains the bundled data's 10 epochs in tens of milliseconds, where a run's fixed
    # costs (capture, warm-up) would be most of what is timed: GPU rows time a whole default
    # run instead (params.yaml's max_epochs).
    parser.add_argument("--gpu-epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--large-rows", type=int, default=1_000_000, help="rows of the GPU/CPU case"
    )
    parser.add_argument("--large-epochs", type=int, default=2)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        model, loop, settings, x, y = load_project(Path(tmp))
        cores = model.usable_cores()
        cases = cpu_cases(model, loop, settings, x, y, args.epochs, cores)
        if cuda:
            cases += gpu_cases(model, loop, settings, x, y, args, cores)
        seconds, first = median_seconds(cases, args.repeats)
    rows, rate = [], {}
    for case, value, warm_up in zip(cases, seconds, first, strict=True):
        failed = getattr(case.run, "failed", "")
        rate[case.label] = case.samples / value
        shown = failed or f"{rate[case.label]:,.0f}"
        if failed:
            del rate[case.label]
        ratio = "-" if failed else f"{rate[case.label] / rate[cases[0].label]:.2f}x"
        rows.append([case.label, case.device, case.threads, shown, ratio, f"{warm_up:.2f}"])
        print(f"{case.label}: {shown} samples/s (first run {warm_up:.2f} s)", flush=True)
    goals = table(["target", "measured", "goal", "met"], targets(rate, cases, args, cores))
    print(goals, flush=True)
    paths = "" if cuda else f" GPU rows: {NO_GPU} (the benchmark adds them on a CUDA machine)."
    load = os.getloadavg()[0]
    intro = " ".join(
        [
            "Training throughput of the `model=torch` MLP on the bundled churn data",
            f"({len(x):,} rows, {x.shape[1]} features), batch size {BATCH_SIZE}, median of",
            f"{args.repeats} interleaved runs of {args.epochs} epochs on a CPU and",
            f"{args.gpu_epochs} on a GPU, after a first run (its",
            "seconds in the last column: allocations, CUDA graph captures, compiles). Baseline:",
            "the first row, a plain loop on one thread, measured in the same run. Our loop also",
            "scores a 10% validation split every epoch (early stopping), counted as overhead.",
            "*One core busy*: another process spins on a core meanwhile, as a parallel test",
            f"worker or DVC stage would. {cores} usable cores (CPU affinity and cgroup quota).",
            f"Load average at the end: {load:.1f}; other work on the machine shows up in every",
            f"row, most in the multi-threaded ones.{paths}",
        ]
    )
    headers = ["loop", "device", "threads", "samples/s", "vs baseline", "first run s"]
    body = f"{intro}\n\n{table(headers, rows)}\n\n{goals}"
    write_section("torch_training", "Torch training throughput", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
