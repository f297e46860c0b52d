"""`make demo`: bake a project with the default answers and run its whole lifecycle.

Leaves the project in build/demo/<project> and ends with a summary of what was produced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import httpx
from bakery import ROOT, bake, run, tool_env
from rich.console import Console
from rich.table import Table

console = Console()


def step(title: str, command: list[str], cwd: Path, env: dict[str, str]) -> str:
    started = time.perf_counter()
    with console.status(f"[bold]{title}[/] ({' '.join(command)})"):
        result = run(command, cwd=cwd, env=env)
    console.print(f"[green]✓[/] {title} [dim]{time.perf_counter() - started:.0f}s[/]")
    return result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_test_record(project: Path, env: dict[str, str]) -> dict:
    """A real holdout row, as a client would send it (JSON types, nulls for missing)."""
    script = (
        "import json, pandas as pd; from {pkg}.contract.validation import FEATURES; "
        "row = pd.read_parquet('data/processed/test.parquet')[FEATURES].astype(object).iloc[0]; "
        "print(json.dumps({{k: (None if v != v else v) for k, v in row.to_dict().items()}}))"
    )
    package = json.loads((project / ".cookiecutter.json").read_text())["package"]
    output = run(["python", "-c", script.format(pkg=package)], cwd=project, env=env).stdout
    return json.loads(output)


def serve_and_ask(project: Path, make: list[str], env: dict[str, str]) -> None:
    """Serve the built bento on a free loopback port; one good and one bad request."""
    port = free_port()
    server = subprocess.Popen(
        [*make, "serve-bento", f"PORT={port}"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with console.status(f"[bold]bentoml serve[/] on {base}"):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit("ERROR: the bento server exited; run `make serve-bento` there")
                time.sleep(0.5)
            else:
                raise SystemExit("ERROR: the bento server did not become ready in 120 s")
        record = one_test_record(project, env)
        good = httpx.post(f"{base}/predict", json=record, timeout=30)
        bad_record = dict(record, tenure=str(record["tenure"]), feature_c=1.5)
        bad = httpx.post(f"{base}/predict", json=bad_record, timeout=30)
        console.print(f"[green]✓[/] served the bento on {base}")
        console.print(f"  POST /predict, a real holdout customer -> {good.status_code} {good.text}")
        console.print(
            f"  POST /predict, tenure sent as text and an extra feature_c -> {bad.status_code}"
        )
        for problem in bad.json().get("problems", []):
            console.print(f"    - {problem['message']}", highlight=False, markup=False)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def canary(project: Path, make: list[str], env: dict[str, str]) -> None:
    """A local canary rollout behind Caddy (a short one), and its verdict."""
    started = time.perf_counter()
    flags = "CANARY_FLAGS=--steps 25,100 --interval 5"
    with console.status(f"[bold]local canary[/] (make canary {flags})"):
        result = run([*make, "canary", flags], cwd=project, env=env, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    verdict = next(
        (line for line in lines if line.startswith(("PROMOTED", "ROLLED_BACK"))),
        f"no verdict (exit {result.returncode}): {' / '.join(lines[-5:])}",
    )
    mark = "[green]✓[/]" if result.returncode == 0 else "[red]✗[/]"
    console.print(f"{mark} local canary behind Caddy [dim]{time.perf_counter() - started:.0f}s[/]")
    for line in lines:
        if line.startswith(("canary:", "step ")):
            console.print(f"  {line}", highlight=False, markup=False)
    console.print(f"  verdict: {verdict}", highlight=False, markup=False)


def summary(project: Path) -> None:
    from mlflow import MlflowClient

    answers = json.loads((project / ".cookiecutter.json").read_text())
    metrics = json.loads((project / "metrics.json").read_text())
    record = json.loads((project / "reports" / "registry.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    version = client.get_model_version_by_alias(record["model_name"], record["alias"])

    table = Table(title="holdout metrics (metrics.json)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    console.print(
        f"MLflow: model [bold]{record['model_name']}[/] version {version.version} has aliases "
        f"[bold]{', '.join(sorted(version.aliases))}[/] (run {record['run_id']}, store "
        f"{project / 'mlflow.db'})"
    )
    console.print(f"Project: {project}  ({answers['model']} model)")
    for label, path in [
        ("raw data (DVC-tracked)", "data/raw/churn.csv"),
        ("model", "models/model"),
        ("plots", "reports/plots"),
        ("validation report", "reports/validation.md"),
        ("pipeline lock", "dvc.lock"),
    ]:
        console.print(f"  {label:<24} {project / path}")
    # The demo ran on the template's venv: the project's own commands need its .venv first.
    console.print(
        f"Next: cd {project.relative_to(ROOT)} && make setup && make help   "
        f"(make setup: the project's own .venv; then make serve, mlflow ui --backend-store-uri "
        f"sqlite:///mlflow.db)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "demo")
    args = parser.parse_args()
    venv = args.venv.resolve()
    env = tool_env(venv)
    shutil.rmtree(args.output, ignore_errors=True)
    project = bake(args.output)
    console.print(f"[green]✓[/] baked {project.relative_to(ROOT)} with the default answers")
    make = ["make", f"VENV={venv}", "UV_FLAGS=--no-deps"]
    step("install the project (make setup)", [*make, "setup"], project, env)
    run(["git", "add", "-A"], cwd=project, env=env)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-qm", "baked"], cwd=project, env=env)
    step("lint and test (make lint test)", [*make, "lint", "test"], project, env)
    step("DVC pipeline and MLflow registry (make repro)", [*make, "repro"], project, env)
    step("BentoML bento, offline (make build)", [*make, "build"], project, env)
    serve_and_ask(project, make, env)
    canary(project, make, env)
    summary(project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
