"""The package's shape: stages depend on shared modules, never on each other.

Each DVC stage in ``pipeline/`` must run on its own, so a stage that imports another would tie
their code together and make DVC rerun one when the other changes. Shared pieces live in
``contract/``, ``modeling/``, ``data.py`` and ``config.py``; the lifecycle and serving layers
sit on top and are never imported by the layers below them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "{{ cookiecutter.package }}"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE
# Which subpackages each layer may import (besides its own and config/data).
ALLOWED = {
    "contract": set(),
    "modeling": {"contract"},
    "pipeline": {"contract", "modeling", "lifecycle"},
    "serving": {"contract", "modeling", "lifecycle"},
    "lifecycle": {"contract", "modeling", "serving"},
}


def imported_modules(path: Path) -> set[str]:
    """Every ``{{ cookiecutter.package }}.*`` module a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(PACKAGE))
    return found


def modules(layer: str) -> list[Path]:
    return sorted(p for p in (SOURCE / layer).glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("stage", modules("pipeline"), ids=lambda path: path.stem)
def test_no_stage_imports_another_stage(stage: Path) -> None:
    others = {f"{PACKAGE}.pipeline.{p.stem}" for p in modules("pipeline")} - {
        f"{PACKAGE}.pipeline.{stage.stem}"
    }
    assert imported_modules(stage) & others == set()


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_the_layers_below_them(layer: str) -> None:
    for path in modules(layer):
        for name in imported_modules(path):
            parts = name.split(".")
            if len(parts) > 2 and parts[1] in ALLOWED and parts[1] != layer:
                assert parts[1] in ALLOWED[layer], f"{path.name} imports {name}"


def test_the_walk_sees_real_imports() -> None:
    """Guards the guard: the train stage's known imports are found."""
    found = imported_modules(SOURCE / "pipeline" / "train.py")
    assert f"{PACKAGE}.modeling.model" in found and f"{PACKAGE}.contract.schema" in found
