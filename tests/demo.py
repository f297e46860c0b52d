"""`make demo`: bake a project with the default answers and run its whole lifecycle.

Leaves the project in build/demo/<project> and ends with a summary of what was produced.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

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
        f"MLflow: model [bold]{record['model_name']}[/] version {version.version} has alias "
        f"[bold]{record['alias']}[/] (run {record['run_id']}, store {project / 'mlflow.db'})"
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
    console.print(
        f"Next: cd {project.relative_to(ROOT)} && make help   "
        f"(mlflow ui --backend-store-uri sqlite:///mlflow.db)"
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
    summary(project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
