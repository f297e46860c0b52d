"""Reading params.yaml into Settings (one line per bad key), and the files rendered from it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from {{ cookiecutter.package }}.config.paths import PARAMS_FILE
from {{ cookiecutter.package }}.config.settings import ParamsError, Settings

__all__ = ["flatten", "load_settings", "parse_settings", "stale_files", "sync_rendered"]


def load_settings(path: Path = PARAMS_FILE) -> Settings:
    """params.yaml, validated; a ParamsError names every bad key, one line each."""
    if not path.exists():
        raise ParamsError(
            f"{path} not found: run commands from the project root, where params.yaml lives."
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    return parse_settings(raw, path)


def parse_settings(raw: Any, source: Path = PARAMS_FILE) -> Settings:
    """Settings from already-parsed params; errors name ``source`` and each bad key."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("\n".join(_sentences(source, error, raw))) from None


def _sentences(path: Path, error: ValidationError, raw: Any = None) -> list[str]:
    lines: dict[str, str] = {}  # one line per key: a union's branches add to it
    for problem in error.errors(include_url=False):
        key = _key(raw, problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if key in lines:
            lines[key] += f", or {message[0].lower()}{message[1:]}"
        elif problem["type"] == "missing":
            lines[key] = f"{path}: {key} is missing; add it (see the comments in {path})"
        elif problem["type"] == "extra_forbidden":
            lines[key] = f"{path}: {key} is not a setting; remove it or fix its spelling"
        else:
            lines[key] = f"{path}: {key} is {problem['input']!r}: {message}"
    return list(lines.values())


def _key(raw: Any, loc: tuple[int | str, ...]) -> str:
    """The params.yaml key of an error: its location without pydantic's validator and union
    branch names (``literal['auto']``, ``constrained-int``), which are not keys of the file."""
    parts, node = [], raw
    for index, part in enumerate(loc):
        if isinstance(node, dict) and (part in node or index == len(loc) - 1):
            parts.append(str(part))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            parts.append(str(part))
            node = node[part] if part < len(node) else None
        elif raw is None and not str(part).startswith("function"):
            parts.append(str(part))  # no input to walk: keep what pydantic says
    return ".".join(parts)


def stale_files(rendered: Mapping[Path, str]) -> list[Path]:
    """Files rendered from params.yaml whose text on disk differs from a fresh rendering."""
    return [
        path for path, text in rendered.items() if not path.exists() or path.read_text() != text
    ]


def sync_rendered(rendered: Mapping[Path, str], check: bool, command: str) -> list[Path]:
    """Write files rendered from params.yaml; with ``check``, write nothing and fail naming the
    stale ones and the ``command`` that renders them."""
    if check:
        if stale := stale_files(rendered):
            raise ParamsError(
                f"{', '.join(map(str, stale))} differ from params.yaml: run `{command}` and "
                "commit the result"
            )
        return []
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(rendered)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``{"train.sklearn.max_iter": 300, ...}`` (MLflow params, diffs)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat
