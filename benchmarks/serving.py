"""Online serving and batch prediction of a default bake, against same-run baselines.

Measures, in one run on this machine:
- requests/s and p50/p99 latency at concurrency 1, 8 and 32 (bounded runs on loopback, single-
  record JSON) for the generated BentoML service (with contract validation); for the same
  model behind a plain FastAPI + uvicorn endpoint, the baseline a user would write, with the
  same thread settings as ours (one OpenMP/BLAS thread, like SERVE_MODEL_THREADS=1); and for a
  BentoML endpoint that returns a constant: the HTTP floor of one worker;
- in process: one record through our path (contract check + features + compiled trees) against
  the classifier alone on a ready NumPy row, the compiled trees alone on that row, and the
  DataFrame path a user would write;
- validation overhead per single-row request: the compiled contract vs pandera;
- batch prediction of 1M rows (Parquet in and out) against raw predict_proba on the same rows
  held in memory: rows/s and peak RSS.

Prerequisite for the HTTP rows: `wrk` (`apt-get install -y wrk`). Without it, load comes from an
httpx load generator in its own process, which shares the cores with the server and so lowers
every HTTP row (the script says so in its output). Results go to the "serving" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bakery import bake, tool_env
from report import table, write_section
from rich.console import Console

console = Console()
PROJECT = "bench-serving"
PACKAGE = "bench_serving"

PREPARE = """
import json, sys
from pathlib import Path
from {pkg}.config import load_settings
from {pkg}.contract.validation import FEATURES
from {pkg}.data import anonymise, load_source, split
from {pkg}.pipeline.train import fit
settings = load_settings()
data = settings.data
frame = anonymise(load_source(data.source), data.pii.hash, data.pii.drop)
train, test = split(frame, data.target, data.test_size, settings.seed)
fit(settings, train).save(Path("bench/model"))
rows = test[FEATURES].sample({rows}, replace=True, random_state=0).reset_index(drop=True)
rows.to_parquet("bench/big.parquet", index=False)
record = test[FEATURES].astype(object).iloc[0].to_dict()
Path("bench/record.json").write_text(json.dumps(record))
"""

BASELINE = """
import os
from pathlib import Path
import pandas as pd
from fastapi import FastAPI
from {pkg}.modeling.model import load_model

model = load_model(Path(os.environ["MODEL_DIR"]))
app = FastAPI()


@app.post("/predict")
def predict(record: dict) -> dict:
    return {{"probability": float(model.predict_proba(pd.DataFrame([record]))[0, 1])}}
"""

# The HTTP floor: the same BentoML settings as the generated service, no model, no checks.
CONSTANT = """
import bentoml


@bentoml.service(workers=1, traffic={"timeout": 30, "max_concurrency": 1024},
                 logging={"access": {"enabled": False}})
class Constant:
    @bentoml.api(route="/predict")
    async def predict(self, record: dict, /) -> dict:
        return {"probability": 0.5, "prediction": False, "model_version": "constant"}
"""

# The baseline runs with one OpenMP/BLAS thread per process, as the service runs its model.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

IN_PROCESS = """
import json, statistics, time
from pathlib import Path
import pandas as pd
from threadpoolctl import threadpool_limits
from {pkg}.contract.records import contract
from {pkg}.contract.validation import validate
from {pkg}.modeling.features import build_features
from {pkg}.modeling.model import load_model
from {pkg}.modeling.trees import compile_trees

threadpool_limits(1)  # as the service's model thread (SERVE_MODEL_THREADS=1)
model = load_model(Path("bench/model"))
record = json.loads(Path("bench/record.json").read_text())
checker = contract()
preprocess, classifier = model.pipeline[0], model.pipeline[-1]
row = preprocess.transform(build_features(checker.to_frame([record])))


def per_call(function, seconds=3.0):
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), len(times) / sum(times)


model.predict_records([record])  # compile the record features once, as the service does
classifier_alone = per_call(lambda: classifier.predict_proba(row))
trees = compile_trees(classifier)
compiled = per_call(lambda: trees.predict_proba(row))
ours = per_call(lambda: (checker.check_record(record), model.predict_records([record])))
floor = per_call(lambda: model.predict_proba(pd.DataFrame([record])))
fast = per_call(lambda: checker.check_record(record), 1.0)
typed = per_call(lambda: checker.to_frame([record]), 1.0)
plain = per_call(lambda: pd.DataFrame([record]), 1.0)
frame = checker.to_frame([record])
slow = per_call(lambda: validate(frame), 2.0)
print(json.dumps(dict(classifier=classifier_alone, compiled=compiled, ours=ours, floor=floor,
                      fast=fast, typed=typed, plain=plain, pandera=slow)))
"""

RAW_BATCH = """
import json, resource, time
from pathlib import Path
import pandas as pd
from {pkg}.modeling.model import load_model
model = load_model(Path("bench/model"))
frame = pd.read_parquet("bench/big.parquet")
started = time.perf_counter()
model.predict_proba(frame)
seconds = time.perf_counter() - started
print(json.dumps(dict(seconds=seconds, rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
"""

BATCH = """
import json, resource, time
from pathlib import Path
started = time.perf_counter()
from {pkg}.modeling.model import load_model
from {pkg}.serving.batch import predict_file
model = load_model(Path("bench/model"))
ready = time.perf_counter()
predict_file(model, 0.5, Path("bench/big.parquet"), Path("bench/out.parquet"), show_progress=False)
done = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(seconds=done - ready, startup=ready - started, rss=rss)))
"""

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
"""

LOADGEN = """
import asyncio, json, statistics, sys, time
import httpx
url, concurrency, seconds, body = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
latencies, errors = [], 0
async def worker(client, deadline):
    global errors
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        headers = {{"content-type": "application/json"}}
        response = await client.post(url, content=body, headers=headers)
        latencies.append(time.perf_counter() - started)
        errors += response.status_code != 200
async def main():
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(worker(client, deadline) for _ in range(concurrency)))
asyncio.run(main())
latencies.sort()
print(json.dumps(dict(rps=len(latencies) / seconds, p50=latencies[len(latencies) // 2],
      p99=latencies[int(len(latencies) * 0.99)], errors=errors)))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def python(code: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


class Server:
    """A server process on a free loopback port, stopped with its whole process group."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [part.replace("PORT", str(self.port)) for part in command]
        with log.open("w") as output:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=output, stderr=output, start_new_session=True
            )
        self.log = log

    def wait(self, probe: str, seconds: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}{probe}", timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"server not ready after {seconds}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def load(
    url: str, body: str, concurrency: int, seconds: float, work: Path, threads: int = 1
) -> dict:
    """(req/s, p50 s, p99 s, errors) of POSTing ``body`` to ``url`` with ``concurrency``
    connections; with wrk, also ``socket_errors`` (connect, read, write, timeout)."""
    if shutil.which("wrk"):
        script = work / "post.lua"
        script.write_text(LUA.format(body=body))
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{int(seconds)}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        units = {"us": 1e-6, "ms": 1e-3, "s": 1.0}

        def percentile(name: str) -> float:
            value, unit = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)", out, re.M).groups()
            return float(value) * units[unit]

        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sockets = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
        )
        return dict(
            rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            p50=percentile("50"),
            p99=percentile("99"),
            errors=int(errors.group(1)) if errors else 0,
            socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
        )
    command = [sys.executable, "-c", LOADGEN, url, str(concurrency), str(seconds), body]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def prepared(work: Path, project_name: str, package: str, rows: int) -> tuple[Path, dict]:
    """A default bake in ``work`` with a trained model, ``rows`` holdout rows and one holdout
    record in its bench/ folder; and the environment that runs its code and BentoML."""
    project = bake(work, project=project_name)
    (project / "bench").mkdir()
    env = tool_env() | {
        "PYTHONPATH": str(project / "src"),
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    console.print("training and writing the inputs ...")
    python(PREPARE.format(pkg=package, rows=rows), project, env)
    return project, env


def peak_rss_mb(kilobytes: int) -> float:
    return kilobytes / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8, help="duration of each load run")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the batch file")
    args = parser.parse_args()
    levels = [1, 8, 32]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project, env = prepared(work, PROJECT, PACKAGE, args.rows)
        body = (project / "bench/record.json").read_text()
        (project / "bench/baseline.py").write_text(BASELINE.format(pkg=PACKAGE))
        (project / "bench/constant.py").write_text(CONSTANT)
        if not shutil.which("wrk"):
            console.print(
                "[yellow]wrk is not installed (apt-get install -y wrk): the HTTP rows use an "
                "httpx load generator that shares the cores with the server, and read lower."
            )
        bin_dir = Path(sys.executable).parent

        results: dict[str, dict[int, dict]] = {}
        servers = {
            "BentoML service (validation on)": (
                [
                    str(bin_dir / "bentoml"),
                    "serve",
                    f"{PACKAGE}.serving.service:ModelService",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "PORT",
                ],
                env | {"SERVE_MODEL_DIR": str(project / "bench/model")},
                "/readyz",
                "/predict",
            ),
            "FastAPI + uvicorn, one thread (no validation)": (
                [
                    str(bin_dir / "uvicorn"),
                    "baseline:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "PORT",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env
                | ONE_THREAD
                | {
                    "MODEL_DIR": str(project / "bench/model"),
                    "PYTHONPATH": f"{project / 'bench'}{os.pathsep}{project / 'src'}",
                },
                "/docs",
                "/predict",
            ),
            "BentoML, constant answer (HTTP floor)": (
                [
                    str(bin_dir / "bentoml"),
                    "serve",
                    "constant:Constant",
                    "--working-dir",
                    str(project / "bench"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "PORT",
                ],
                env,
                "/readyz",
                "/predict",
            ),
        }
        for name, (command, server_env, probe, route) in servers.items():
            console.print(f"load on {name} ...")
            server = Server(command, project, server_env, work / f"{len(results)}.log")
            try:
                server.wait(probe)
                load(server.url + route, body, 4, 2, work)  # warm up
                results[name] = {
                    c: load(server.url + route, body, c, args.seconds, work) for c in levels
                }
            finally:
                server.stop()

        console.print("in-process timings ...")
        inproc = json.loads(python(IN_PROCESS.format(pkg=PACKAGE), project, env))
        console.print(f"batch of {args.rows} rows ...")
        raw = json.loads(python(RAW_BATCH.format(pkg=PACKAGE), project, env))
        batch = json.loads(python(BATCH.format(pkg=PACKAGE), project, env))
        batch_seconds, batch_rss = batch["seconds"], batch["rss"]

    ours, base, constant = results.values()
    rows = []
    for c in levels:
        for name, runs in results.items():
            run = runs[c]
            rows.append(
                [
                    c,
                    name,
                    f"{run['rps']:.0f}",
                    f"{run['p50'] * 1e3:.1f}",
                    f"{run['p99'] * 1e3:.1f}",
                    run["errors"],
                ]
            )
    ratio = {c: ours[c]["rps"] / base[c]["rps"] for c in levels}
    to_floor = {c: ours[c]["rps"] / constant[c]["rps"] for c in levels}
    ours_p50, ours_rate = inproc["ours"]
    alone_p50, alone_rate = inproc["classifier"]
    in_process = ours_p50 / alone_p50
    overhead_ms = inproc["fast"][0] * 1e3
    raw_rate = args.rows / raw["seconds"]
    batch_rate = args.rows / batch_seconds
    verdict = [
        ["HTTP c=1 vs the constant endpoint >= 0.6x", f"{to_floor[1]:.2f}x", to_floor[1] >= 0.6],
        ["HTTP c=1 vs FastAPI, equal threads >= 2x", f"{ratio[1]:.2f}x", ratio[1] >= 2],
        ["HTTP c=32 vs FastAPI, equal threads >= 2x", f"{ratio[32]:.2f}x", ratio[32] >= 2],
        [
            "one record in process vs the classifier alone <= 1.5x (p50)",
            f"{in_process:.2f}x",
            in_process <= 1.5,
        ],
        ["validation <= 1 ms p50", f"{overhead_ms:.3f} ms", overhead_ms <= 1],
        [
            "batch >= 0.8x raw predict_proba",
            f"{batch_rate / raw_rate:.2f}x",
            batch_rate >= 0.8 * raw_rate,
        ],
        ["batch peak RSS <= 2 GB", f"{peak_rss_mb(batch_rss):.0f} MB", batch_rss / 1024 <= 2048],
    ]
    loader = "wrk" if shutil.which("wrk") else "an httpx load generator in its own process"
    body_md = "\n\n".join(
        [
            f"Single-record JSON POSTs on loopback, {args.seconds:.0f} s per run, load from "
            f"{loader}; one worker each. Errors are non-200 answers (there should be none). "
            "Our service runs the model with one OpenMP thread (`SERVE_MODEL_THREADS=1`); the "
            "FastAPI baseline (a DataFrame from the record, then `predict_proba`, the endpoint a "
            "user would write) runs with `OMP_NUM_THREADS=1`, the same setting. The constant "
            "endpoint is a BentoML service with our settings that answers without a model: "
            "the most one worker can do over HTTP here. Load average when the run ended: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; other work on the machine "
            "shows up in every row.",
            table(["concurrency", "server", "req/s", "p50 ms", "p99 ms", "errors"], rows),
            "Ours / FastAPI throughput: "
            + ", ".join(f"c={c}: **{ratio[c]:.2f}x**" for c in levels)
            + ". Ours / constant endpoint: "
            + ", ".join(f"c={c}: **{to_floor[c]:.2f}x**" for c in levels),
            table(
                ["in-process, one record, one thread", "p50 ms", "calls/s"],
                [
                    [
                        "baseline: the classifier alone on a ready NumPy row",
                        f"{alone_p50 * 1e3:.3f}",
                        f"{alone_rate:.0f}",
                    ],
                    [
                        "the classifier compiled (modeling/trees.py), the same row",
                        f"{inproc['compiled'][0] * 1e3:.3f}",
                        f"{inproc['compiled'][1]:.0f}",
                    ],
                    [
                        "ours: check_record + predict_records (features without pandas, "
                        "compiled trees)",
                        f"{ours_p50 * 1e3:.3f}",
                        f"{ours_rate:.0f}",
                    ],
                    [
                        "DataFrame([record]) + predict_proba (what a user writes)",
                        f"{inproc['floor'][0] * 1e3:.2f}",
                        f"{inproc['floor'][1]:.0f}",
                    ],
                    [
                        "contract check, compiled (records.py)",
                        f"{overhead_ms:.3f}",
                        f"{inproc['fast'][1]:.0f}",
                    ],
                    [
                        "contract check, pandera validate",
                        f"{inproc['pandera'][0] * 1e3:.2f}",
                        f"{inproc['pandera'][1]:.0f}",
                    ],
                    [
                        "typed frame (to_frame)",
                        f"{inproc['typed'][0] * 1e3:.2f}",
                        f"{inproc['typed'][1]:.0f}",
                    ],
                    [
                        "pandas DataFrame([record])",
                        f"{inproc['plain'][0] * 1e3:.2f}",
                        f"{inproc['plain'][1]:.0f}",
                    ],
                ],
            ),
            f"One record in process / the classifier alone: **{in_process:.2f}x** (p50).",
            table(
                [f"{args.rows:,} rows", "seconds", "rows/s", "peak RSS MB"],
                [
                    [
                        "raw predict_proba, frame in memory",
                        f"{raw['seconds']:.1f}",
                        f"{raw_rate:,.0f}",
                        f"{peak_rss_mb(raw['rss']):.0f}",
                    ],
                    [
                        "batch `predict_file`: Parquet in, validate, predict, Parquet out",
                        f"{batch_seconds:.1f}",
                        f"{batch_rate:,.0f}",
                        f"{peak_rss_mb(batch_rss):.0f}",
                    ],
                ],
            ),
            f"Batch / raw rows/s: **{batch_rate / raw_rate:.2f}x**. Batch time includes reading, "
            "validating and writing the files; raw predict_proba gets the frame in memory. The "
            f"`predict` command adds {batch['startup']:.1f} s of imports and model loading.",
            table(
                ["target", "measured", "met"],
                [[name, value, "yes" if met else "**no**"] for name, value, met in verdict],
            ),
        ]
    )
    write_section("serving", "Serving and batch prediction", body_md)
    console.print(body_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
