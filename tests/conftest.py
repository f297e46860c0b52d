"""Fixtures for the template's tests; baking helpers live in bakery.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bakery import PRESETS, bake, combo_id, pairwise

COVERING = pairwise()


@pytest.fixture(scope="session")
def bakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, str], Path]]:
    """Every combination of the covering set and every preset, baked once per worker."""
    root = tmp_path_factory.mktemp("bakes")
    baked: dict[str, tuple[dict[str, str], Path]] = {}
    for combo in COVERING:
        baked[combo_id(combo)] = (combo, bake(root / combo_id(combo), **combo))
    for preset in PRESETS:
        baked[preset.name] = (preset.answers, bake(root / preset.name, **preset.answers))
    return baked


def bake_ids() -> list[str]:
    return [combo_id(combo) for combo in COVERING] + [preset.name for preset in PRESETS]
