"""Soak: the served bento under steady load for N minutes, with prediction sampling on.

A default bake's model is served by `bentoml serve` (one worker, loopback) from the project
directory, so params.yaml's `monitoring` applies: sample_rate and the sink. The sink's size
limit is shrunk (``--sink-megabytes``, default 10) so that retention has to delete within the
run. wrk (2 threads, 32 connections, a holdout record) runs one minute at a time; after each
minute the script records throughput, p50/p99 latency, errors (non-2xx answers and socket
errors), the worker's RSS, the sink's bytes (and, every 5 s, its largest size) and the load
average. The report gives each column's slope per minute (least squares over minute 2 to the
last; minute 1 warms up) and checks the targets:

- worker RSS grows less than 5 % between minute 2 and the last minute;
- p99 of the last minute within 1.5x of minute 2's;
- no errors;
- the sink never above its retention limit.

Prerequisite: `wrk` (`apt-get install -y wrk`). Results go to the "soak" section of
docs/benchmarks.md. Run it on a quiet machine: other work shows up in the latencies (the load
average is in the table).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import psutil
from report import table, write_section
from rich.console import Console
from serving import Server, load, prepared

console = Console()
PROJECT, PACKAGE = "bench-soak", "bench_soak"
CONNECTIONS, THREADS = 32, 2
MB = 1_000_000


def sink_files(sink: Path) -> dict[Path, int]:
    found = {}
    for path in sink.rglob("*.jsonl"):
        with contextlib.suppress(FileNotFoundError):  # retention may delete it meanwhile
            found[path] = path.stat().st_size
    return found


def sink_bytes(sink: Path) -> int:
    return sum(sink_files(sink).values())


class SinkWatch(threading.Thread):
    """Every ``every`` seconds: the largest size the sink reached, and each file's size (those
    gone by the end were deleted by retention; a part stops growing long before that)."""

    def __init__(self, sink: Path, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.sink, self.every, self.largest = sink, every, 0
        self.sizes: dict[Path, int] = {}
        self.stopped = threading.Event()

    def look(self) -> dict[Path, int]:
        files = sink_files(self.sink)
        self.largest = max(self.largest, sum(files.values()))
        self.sizes |= files
        return files

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.look()

    def finish(self) -> dict[str, int]:
        """Files left and deleted, and the bytes written to all of them."""
        self.stopped.set()
        left = self.look()
        return dict(
            kept=len(left), deleted=len(self.sizes) - len(left), written=sum(self.sizes.values())
        )


def worker_rss(server: subprocess.Popen) -> int:
    """The RSS of the largest process `bentoml serve` started: its worker, model loaded."""
    children = psutil.Process(server.pid).children(recursive=True)
    return max(child.memory_info().rss for child in children)


def metric_sum(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def slope(values: list[float]) -> float:
    """Least-squares change per minute."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    return num / sum((x - mean_x) ** 2 for x in range(n))


def soak(
    project: Path, env: dict[str, str], minutes: int, limit_mb: float, work: Path, sampling: bool
) -> dict:
    """``minutes`` of load on a fresh server; ``sampling`` off: SERVE_SAMPLE_RATE=0."""
    sink = project / "monitoring" / "samples"
    body = (project / "bench/record.json").read_text()
    server_env = env | {
        "SERVE_MODEL_DIR": str(project / "bench/model"),
        "SERVE_SAMPLE_MAX_MEGABYTES": f"{limit_mb:g}",
    }
    if not sampling:
        server_env["SERVE_SAMPLE_RATE"] = "0"
    command = [str(Path(sys.executable).parent / "bentoml"), "serve"]
    command += [f"{PACKAGE}.serving.service:ModelService", "--host", "127.0.0.1", "--port", "PORT"]
    server = Server(command, project, server_env, work / f"serve-{sampling}.log")
    watch = SinkWatch(sink)
    rows = []
    try:
        server.wait("/readyz")
        url = server.url + "/predict"
        load(url, body, CONNECTIONS, 5, work, THREADS)  # warm up
        watch.start()
        for minute in range(1, minutes + 1):
            run = load(url, body, CONNECTIONS, 60, work, THREADS)
            rows.append(
                run
                | {
                    "minute": minute,
                    "rss": worker_rss(server.process),
                    "sink": sink_bytes(sink),
                    "load": os.getloadavg()[0],
                }
            )
            console.print(rows[-1])
        drawn = metric_sum(server.url, "model_samples_total")
        dropped = metric_sum(server.url, "model_samples_dropped_total")
    finally:
        files = watch.finish()
        server.stop()
    largest = max(watch.largest, *(row["sink"] for row in rows))
    return dict(rows=rows, drawn=drawn, dropped=dropped, largest=largest, files=files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=10, help="minutes of load (at least 3)")
    parser.add_argument(
        "--sink-megabytes", type=float, default=10, help="the sink's retention size limit"
    )
    parser.add_argument(
        "--baseline-minutes", type=int, default=2, help="minutes with sampling off, first"
    )
    args = parser.parse_args()
    if args.minutes < 3 or not shutil.which("wrk"):
        raise SystemExit("needs --minutes 3 or more and wrk on PATH (apt-get install -y wrk)")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project, env = prepared(work, PROJECT, PACKAGE, rows=1000)
        rate = re.search(r"^\s+sample_rate: (\S+)", (project / "params.yaml").read_text(), re.M)
        console.print(f"baseline, sampling off, {args.baseline_minutes} minutes ...")
        baseline = soak(project, env, args.baseline_minutes, args.sink_megabytes, work, False)
        console.print(f"soaking for {args.minutes} minutes ...")
        result = soak(project, env, args.minutes, args.sink_megabytes, work, True)
        result["baseline"] = baseline["rows"]
    write_section("soak", "Serving for hours (soak)", report(result, args, rate[1], load_before))
    return 0


def report(result: dict, args: argparse.Namespace, rate: str, load_before: tuple) -> str:
    rows = result["rows"]
    second, last = rows[1], rows[-1]
    errors = sum(row["errors"] + row["socket_errors"] for row in rows)
    rss_growth = last["rss"] / second["rss"] - 1
    p99_ratio = last["p99"] / second["p99"]
    limit = args.sink_megabytes * MB
    table_rows = [
        [
            row["minute"],
            f"{row['rps']:.0f}",
            f"{row['p50'] * 1e3:.1f}",
            f"{row['p99'] * 1e3:.1f}",
            row["errors"] + row["socket_errors"],
            f"{row['rss'] / MB:.1f}",
            f"{row['sink'] / MB:.2f}",
            f"{row['load']:.2f}",
        ]
        for row in rows
    ]
    steady = rows[1:]
    slopes = [
        "per minute",
        f"{slope([r['rps'] for r in steady]):+.1f}",
        f"{slope([r['p50'] * 1e3 for r in steady]):+.2f}",
        f"{slope([r['p99'] * 1e3 for r in steady]):+.2f}",
        "",
        f"{slope([r['rss'] / MB for r in steady]):+.2f}",
        f"{slope([r['sink'] / MB for r in steady]):+.2f}",
        "",
    ]
    slopes[0] = "slope, min 2 to last"
    verdict = [
        [
            "worker RSS growth, minute 2 to last, < 5 %",
            f"{rss_growth * 100:+.1f} %",
            rss_growth < 0.05,
        ],
        ["p99 last minute <= 1.5x minute 2", f"{p99_ratio:.2f}x", p99_ratio <= 1.5],
        ["errors == 0", str(errors), errors == 0],
        [
            f"sink <= its retention limit ({args.sink_megabytes:g} MB)",
            f"{result['largest'] / MB:.2f} MB at most",
            result["largest"] <= limit,
        ],
    ]
    dropped_share = result["dropped"] / result["drawn"] if result["drawn"] else 0.0
    files, base = result["files"], result["baseline"]
    per_sample = files["written"] / max(result["drawn"] - result["dropped"], 1)
    return "\n\n".join(
        [
            f"A default bake's model served by `bentoml serve` (one worker, loopback) for "
            f"{args.minutes} minutes under wrk ({THREADS} threads, {CONNECTIONS} connections, "
            f"one holdout record), sampling on (`monitoring.sample_rate` {rate}) into a "
            f"directory sink whose size limit is shrunk to {args.sink_megabytes:g} MB "
            "(`SERVE_SAMPLE_MAX_MEGABYTES`) so that retention deletes during the run. Each row "
            "is one minute of wrk; RSS is the worker's at the minute's end, sink its bytes then; "
            "load is the 1-minute load average then (server and wrk make about 2 of it). "
            f"Load average before the run: {load_before[0]:.2f} / {load_before[1]:.2f} / "
            f"{load_before[2]:.2f} (1 / 5 / 15 min) on {os.cpu_count()} cores.",
            table(
                [
                    "minute",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                    "worker RSS MB",
                    "sink MB",
                    "load",
                ],
                [*table_rows, slopes],
            ),
            "Baseline, the same server with sampling off (`SERVE_SAMPLE_RATE=0`), "
            f"{len(base)} minutes just before: "
            + ", ".join(
                f"minute {row['minute']}: {row['rps']:.0f} req/s, p50 {row['p50'] * 1e3:.1f} ms, "
                f"p99 {row['p99'] * 1e3:.1f} ms, {row['errors'] + row['socket_errors']} errors"
                for row in base
            )
            + ".",
            f"Samples drawn {result['drawn']:,.0f}, dropped {result['dropped']:,.0f} "
            f"({dropped_share * 100:.2f} %); the sink's largest size, read every 5 s: "
            f"{result['largest'] / MB:.2f} MB; retention deleted {files['deleted']} of its parts, "
            f"{files['kept']} were left; {files['written'] / MB:.1f} MB written in all, "
            f"{per_sample:.0f} bytes per sample.",
            table(
                ["target", "measured", "met"],
                [[name, value, "yes" if met else "**no**"] for name, value, met in verdict],
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
