"""Bake, bake-to-green, and DVC overhead of a default project.

Measures, in one run on this machine:
- bake time (cookiecutter API, and the CLI a user runs);
- bake -> green: `make setup` (fresh .venv, warm uv cache) + `make test` + `make repro`;
- the generated project's `make test-all` (every test, what its CI runs), beside `make test`;
- no-op `dvc repro` against bare `dvc status` on the same, fully reproduced project (ratio);
- optionally (`--template-test`), the template's own `make test`.

Results go to the "lifecycle" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bakery import ROOT, bake, tool_env
from report import table, write_section
from rich.console import Console

console = Console()


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return time.perf_counter() - started


def median_of(runs: int, command: list[str], cwd: Path, env: dict[str, str]) -> float:
    return statistics.median(timed(command, cwd, env) for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="repetitions of the quick timings")
    parser.add_argument("--template-test", action="store_true", help="also time `make test`")
    args = parser.parse_args()
    env = tool_env()
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        api = []
        for index in range(args.runs):
            started = time.perf_counter()
            bake(work / f"api{index}")
            api.append(time.perf_counter() - started)
        cli = median_of(
            args.runs,
            ["cookiecutter", "--no-input", "-f", "-o", str(work / "cli"), str(ROOT)],
            work,
            env,
        )
        rows.append(["bake (cookiecutter API)", f"{statistics.median(api):.2f} s", ""])
        rows.append(["bake (cookiecutter CLI, incl. start-up)", f"{cli:.2f} s", ""])

        project = bake(work / "green")
        # A user's shell: no template venv, and Python caching bytecode as it does by default.
        clean_env = {
            k: v for k, v in env.items() if k not in {"VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"}
        }
        clean_env["PATH"] = clean_env["PATH"].split(":", 1)[1]  # drop the template venv
        steps = {}
        load_before = os.getloadavg()[0]
        for target in ["setup", "test", "repro"]:
            with console.status(f"make {target}"):
                steps[target] = timed(["make", target], project, clean_env)
            console.print(f"make {target}: {steps[target]:.1f} s")
        green = sum(steps.values())
        load_after = os.getloadavg()[0]
        # Not part of bake -> green: the whole suite, also the tests `make test` leaves out.
        with console.status("make test-all"):
            test_all = timed(["make", "test-all"], project, clean_env)
        console.print(f"make test-all: {test_all:.1f} s")
        rows.append(
            [
                "bake -> green (setup + test + repro, warm cache)",
                f"{green:.1f} s",
                f"setup {steps['setup']:.1f} s, test {steps['test']:.1f} s, "
                f"repro {steps['repro']:.1f} s; target <= 30 s; 1-min load average "
                f"{load_before:.1f} before, {load_after:.1f} after",
            ]
        )
        rows.append(
            [
                "generated `make test-all` (every test; its CI runs this)",
                f"{test_all:.1f} s",
                f"{test_all / steps['test']:.1f}x `make test` (all but `slow`, one served bento)",
            ]
        )
        project_env = tool_env(project / ".venv")
        project_env.pop("PYTHONDONTWRITEBYTECODE", None)
        status = median_of(args.runs, ["dvc", "status"], project, project_env)
        noop = median_of(args.runs, ["dvc", "repro"], project, project_env)
        make_noop = median_of(args.runs, ["make", "repro"], project, clean_env)
        rows.append(["`dvc status` (baseline)", f"{status:.2f} s", ""])
        rows.append(
            [
                "no-op `dvc repro` (DVC itself)",
                f"{noop:.2f} s",
                f"{noop / status:.2f}x `dvc status` (DVC walks the stage graph)",
            ]
        )
        rows.append(
            [
                "no-op `make repro` (what users and workflows run)",
                f"{make_noop:.2f} s",
                f"{make_noop / status:.2f}x `dvc status`; target <= 1.2x",
            ]
        )
    if args.template_test:
        with console.status("make test (template)"):
            seconds = timed(
                ["make", "test"], ROOT, {k: v for k, v in env.items() if k != "VIRTUAL_ENV"}
            )
        rows.append(
            [
                "template `make test` (.venv already set up)",
                f"{seconds / 60:.1f} min",
                "target <= 20 min",
            ]
        )
    body = table(["measure", "value", "notes"], rows)
    write_section("lifecycle", "Bake and lifecycle", body)
    console.print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
