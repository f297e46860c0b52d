"""What a saved model directory says about itself: its family, hyperparameters and seed.

Every model family writes and reads ``meta.json`` through these two functions, and callers that
only need the file names (the registry, serving) import them from here without importing sklearn
or torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

META_FILE = "meta.json"
# Per-epoch losses, written by families that train in epochs; the register stage logs them.
HISTORY_FILE = "history.json"


def write_meta(directory: Path, family: str, params: dict[str, Any], seed: int) -> None:
    meta = {"family": family, "params": params, "seed": seed}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{directory} holds no model ({META_FILE} missing): run `make repro`."
        )
    return json.loads(path.read_text())
