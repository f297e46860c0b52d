"""Install the generated project's dependencies into the template's venv.

The list comes from a freshly baked project's own pyproject.toml, so the template's tests run
against exactly what a user's `make setup` installs. Each baked project is then installed into
this same venv with `--no-deps` (one venv serving every bake).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bakery import bake

TORCH = "torch==2.13.0"  # pip finds the CPU wheel on these machines; uv would fetch CUDA


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--venv", type=Path, required=True)
    args = parser.parse_args()
    python = args.venv / "bin" / "python"
    with tempfile.TemporaryDirectory() as tmp:
        project = bake(Path(tmp), model="torch")
        has_torch = subprocess.run([python, "-c", "import torch"], capture_output=True)
        if has_torch.returncode != 0:
            subprocess.run([python, "-m", "pip", "install", "--quiet", TORCH], check=True)
        subprocess.run(
            [
                args.venv / "bin" / "uv",
                "pip",
                "install",
                "--quiet",
                "--compile-bytecode",  # tests spawn many processes: ~2x faster imports
                "--python",
                python,
                "-r",
                project / "pyproject.toml",
                "--extra",
                "dev",
            ],
            check=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
