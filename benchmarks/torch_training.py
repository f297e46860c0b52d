"""Training throughput of the torch family (samples/s at a fixed batch size).

Bakes a ``model=torch`` project, builds its features from the bundled data, and times epochs of
our training loop against a plain hand-written torch loop measured in the same run, so the
ratios hold across machines. On a CUDA machine it also times a hand-written loop that keeps the
data on the GPU, our loop with its defaults (mixed_precision auto), forced fp32 and forced mixed
precision, and, on 1M rows (the bundled rows drawn with replacement), our loop on the GPU
against our loop on all CPU cores; the ratios print from this one run. Without CUDA those rows
say "no CUDA device here".

    python benchmarks/torch_training.py [--epochs 10] [--repeats 5] [--large-rows 1000000]
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


def load_project(tmp: Path):
    """The baked project's torch module and its training features as tensors."""
    project = bake(tmp, project="bench-torch", model="torch")
    sys.path.insert(0, str(project / "src"))
    package = "bench_torch"
    config = importlib.import_module(f"{package}.config")
    data = importlib.import_module(f"{package}.data")
    schema = importlib.import_module(f"{package}.contract.schema")
    module = importlib.import_module(f"{package}.modeling.torch_model")
    settings = config.load_settings(project / "params.yaml")
    frame = data.load_source(settings.data.source)
    features = importlib.import_module(f"{package}.modeling.features")
    preprocessor = features.make_preprocessor()
    x = preprocessor.fit_transform(features.build_features(schema.inputs(frame)))
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(data.labels(frame, settings.data), dtype=torch.float32).unsqueeze(1)
    return module, settings.train.torch.model_dump(), x, y


def hand_written(
    module, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int, device: str = "cpu"
) -> None:
    """The loop people write first: shuffle indices, slice, step. No DataLoader, no AMP.

    On CUDA the data is moved to the GPU once and the order drawn there (a resident loop).
    """
    torch.manual_seed(0)
    x, y = x.to(device), y.to(device)
    network = module.build_network(x.shape[1], settings["hidden_sizes"], settings["dropout"])
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


def per_row_loader(module, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    """A default DataLoader: fetches and collates BATCH_SIZE single rows per batch."""
    torch.manual_seed(0)
    network = module.build_network(x.shape[1], settings["hidden_sizes"], settings["dropout"])
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings["learning_rate"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True)
    for _ in range(epochs):
        for xb, yb in loader:
            loss = loss_fn(network(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def ours(module, settings: dict, x: torch.Tensor, y: torch.Tensor, epochs: int, device: str):
    """Our loop (module._train): resident batches, AMP where it pays, per-epoch validation."""
    params = {**settings, "max_epochs": epochs, "patience": epochs + 1, "batch_size": BATCH_SIZE}
    split = len(x) * 9 // 10
    network = module.build_network(x.shape[1], settings["hidden_sizes"], settings["dropout"])
    module._train(
        network,
        (x[:split], y[:split]),
        (x[split:], y[split:]),
        params,
        torch.device(device),
        0,
        module.History(),
    )


@dataclass
class Case:
    label: str
    device: str
    run: Callable[[], None]
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


def median_seconds(cases: list[Case], repeats: int) -> list[float]:
    """Median time of each case. Rounds interleave the cases, so that a burst of other work on
    the machine slows all of them alike instead of one."""
    for case in cases:
        timed(case)  # warm-up: first-call allocations and lazy initialisation are not throughput
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(repeats):
        for index, case in enumerate(cases):
            times[index].append(timed(case))
    return [statistics.median(values) for values in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--large-rows", type=int, default=1_000_000, help="rows of the GPU/CPU case"
    )
    parser.add_argument("--large-epochs", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        module, settings, x, y = load_project(Path(tmp))
        epochs = args.epochs
        # Our loop trains on 90% and scores the other 10% each epoch; count the rows it trains.
        ours_samples = epochs * (len(x) * 9 // 10)
        plain_samples = epochs * len(x)

        def plain() -> None:
            hand_written(module, settings, x, y, epochs)

        def per_row() -> None:
            per_row_loader(module, settings, x, y, epochs)

        def our_cpu() -> None:
            ours(module, settings, x, y, epochs, "cpu")

        cases = [
            Case("hand-written loop, 1 thread", "cpu", plain, plain_samples),
            Case("hand-written loop, all cores", "cpu", plain, plain_samples, cores),
            Case("default DataLoader (per-row collation), 1 thread", "cpu", per_row, plain_samples),
            Case("our loop, defaults (cpu_threads 1, fp32)", "cpu", our_cpu, ours_samples),
            Case("our loop, cpu_threads auto", "cpu", our_cpu, ours_samples, cores),
            Case("our loop, cpu_threads 1, one core busy", "cpu", our_cpu, ours_samples, 1, True),
            Case(
                "our loop, cpu_threads auto, one core busy",
                "cpu",
                our_cpu,
                ours_samples,
                cores,
                True,
            ),
        ]
        cuda = torch.cuda.is_available()
        if cuda:
            name = f"cuda ({torch.cuda.get_device_name(0)})"
            resident = functools.partial(hand_written, module, settings, x, y, epochs, "cuda")
            cases.append(
                Case("hand-written loop on GPU, data resident", name, resident, plain_samples)
            )
            for label, amp in [
                ("defaults (mixed_precision auto)", "auto"),
                ("fp32", False),
                ("mixed precision forced", True),
            ]:
                gpu = {**settings, "mixed_precision": amp}
                run = functools.partial(ours, module, gpu, x, y, epochs, "cuda")
                cases.append(Case(f"our loop on GPU, {label}", name, run, ours_samples))
            picks = torch.randint(
                len(x), (args.large_rows,), generator=torch.Generator().manual_seed(0)
            )
            big_x, big_y = x[picks], y[picks]
            big = args.large_epochs * (args.large_rows * 9 // 10)
            cases += [
                Case(
                    f"our loop on GPU, defaults, {args.large_rows:,} rows",
                    name,
                    functools.partial(
                        ours, module, settings, big_x, big_y, args.large_epochs, "cuda"
                    ),
                    big,
                ),
                Case(
                    f"our loop on all CPU cores, {args.large_rows:,} rows",
                    "cpu",
                    functools.partial(
                        ours, module, settings, big_x, big_y, args.large_epochs, "cpu"
                    ),
                    big,
                    cores,
                ),
            ]
        seconds = median_seconds(cases, args.repeats)
    rates = [case.samples / value for case, value in zip(cases, seconds, strict=True)]
    rows = []
    for case, rate in zip(cases, rates, strict=True):
        rows.append(
            [case.label, case.device, case.threads, f"{rate:,.0f}", f"{rate / rates[0]:.2f}x"]
        )
        print(f"{case.label}: {rate:,.0f} samples/s", flush=True)
    rate = {case.label: value for case, value in zip(cases, rates, strict=True)}
    if cuda:
        large = f"{args.large_rows:,} rows"
        gpu_ratios = [
            [
                "our GPU loop (defaults) vs the resident hand-written loop, same batch",
                rate["our loop on GPU, defaults (mixed_precision auto)"]
                / rate["hand-written loop on GPU, data resident"],
                0.9,
            ],
            [
                f"defaults on GPU vs our loop on all CPU cores, {large}",
                rate[f"our loop on GPU, defaults, {large}"]
                / rate[f"our loop on all CPU cores, {large}"],
                5.0,
            ],
            [
                "mixed precision default (auto) vs fp32",
                rate["our loop on GPU, defaults (mixed_precision auto)"]
                / rate["our loop on GPU, fp32"],
                0.98,
            ],
        ]
        gpu_note = "\n\n" + table(
            ["GPU target", "ratio", "target", "met"],
            [
                [label, f"{value:.2f}x", f">= {goal}x", "yes" if value >= goal else "**no**"]
                for label, value, goal in gpu_ratios
            ],
        )
    else:
        gpu_note = "\n\n" + table(
            ["GPU target", "ratio"],
            [
                [label, "no CUDA device here"]
                for label in [
                    "our GPU loop (defaults) vs the resident hand-written loop, same batch",
                    f"defaults on GPU vs our loop on all CPU cores, {args.large_rows:,} rows",
                    "mixed precision default (auto) vs fp32",
                ]
            ],
        )
        print("GPU rows: no CUDA device here", flush=True)
    load = os.getloadavg()[0]
    intro = " ".join(
        [
            "Training throughput of the `model=torch` MLP on the bundled churn data",
            f"({len(x):,} rows, {x.shape[1]} features), batch size {BATCH_SIZE}, median of",
            f"{args.repeats} interleaved runs of {epochs} epochs after a warm-up. Baseline: the",
            "first row, a plain loop on one thread like our default, measured in the same run.",
            "Our loop also scores a 10% validation split every epoch (early stopping), counted",
            "as overhead. *One core busy*: another process spins on a core meanwhile, as a",
            f"parallel test worker or DVC stage would. Load average at the end: {load:.1f};",
            "other work on the machine shows up in every row, most in the multi-threaded ones.",
        ]
    )
    headers = ["loop", "device", "threads", "samples/s", "vs baseline"]
    body = f"{intro}\n\n{table(headers, rows)}{gpu_note}"
    write_section("torch_training", "Torch training throughput", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
