"""Write one benchmark's results into its own section of docs/benchmarks.md.

Each script owns the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``, so scripts
can run alone or together without clobbering each other's numbers.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every number here is written by a script in `benchmarks/` (`make benchmarks` runs them all).
Each compares against a baseline measured in the same run, so the ratios hold across machines;
the absolute times are for the machine named under each section.
"""


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    section = (
        f"<!-- {name}:start -->\n## {title}\n\n"
        f"Measured {stamp} on {machine()} by `benchmarks/{name}.py`.\n\n{body.strip()}\n"
        f"<!-- {name}:end -->"
    )
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S
    )
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text}\n{section}\n"
    DOC.write_text(text)


def table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
