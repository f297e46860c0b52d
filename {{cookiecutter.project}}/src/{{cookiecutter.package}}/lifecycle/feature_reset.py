"""Resetting the engineered features (modeling/engineered.py) when `adopt` brings new data.

The example's features read the example's columns; new data gets none, with the code that was
there kept below, commented, as a pattern. Features the user wrote stay as long as the columns
they read are still in the contract; otherwise adopt stops and says which, unless --force.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from {{ cookiecutter.package }}.lifecycle import owned
from {{ cookiecutter.package }}.lifecycle.owned import AdoptError

RESET = '''"""Engineered features: new columns computed row by row from the contract's columns.

`adopt` reset them: the model sees the contract's columns as they are. To add a feature, name it
in DERIVED, the contract columns it reads in ENGINEERED_FROM, and compute it in derive() from
arrays (one value per record; a missing number is NaN, missing text None or NaN), so training,
batch and the service get the same values. A derived name that is also a contract column
replaces that column's values. The code before the reset is kept below, commented, as a pattern.
The last line is adopt's fingerprint: once you edit this file, adopt leaves it alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DERIVED: list[str] = []
ENGINEERED_FROM: list[str] = []


def derive(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The engineered columns, as float64 arrays, from the ENGINEERED_FROM input columns."""
    return {}
'''


def reset_text(previous: str) -> str:
    """The engineered-features file with none, and ``previous``'s code below it, commented."""
    body, _ = owned.split(previous)
    lines = body.splitlines()
    try:
        tree = ast.parse(body)
        docstring = ast.get_docstring(tree) is not None
        start = tree.body[0].end_lineno if docstring and tree.body else 0
    except SyntaxError:
        start = 0
    code = "\n".join(lines[start or 0 :]).strip("\n")
    if not code:
        return RESET
    kept = "\n".join(f"# {line}".rstrip() for line in code.splitlines())
    return f"{RESET}\n\n# The engineered features before `adopt` reset them:\n#\n{kept}\n"


def plan_reset(
    path: Path, inputs: set[str], force: bool
) -> tuple[owned.Planned | None, str | None]:
    """(the file to write, or None; a note when the user's features are kept)."""
    state = owned.state(path)
    derived, reads = engineered_names(path)
    if state is owned.State.OURS and not derived:
        return None, None  # already reset: nothing engineered, nothing to keep
    if state is owned.State.CHANGED and not force:
        if missing := [name for name in reads if name not in inputs]:
            raise AdoptError(
                f"{path} reads {missing}, which the new data does not have, and you changed "
                "that file: fix ENGINEERED_FROM and derive() there, or pass --force to reset it "
                "(your code is kept in it, commented)"
            )
        return None, f"kept {path}: your engineered features {derived}"
    previous = path.read_text() if path.exists() else ""
    return owned.Planned(path, owned.stamped(reset_text(previous)), "no engineered features"), None


def engineered_names(path: Path) -> tuple[list[str], list[str]]:
    """(DERIVED, ENGINEERED_FROM) of the engineered-features file, read by running it."""
    if not path.exists():
        return [], []
    spec = importlib.util.spec_from_file_location("_adopt_engineered", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return list(module.DERIVED), list(module.ENGINEERED_FROM)
