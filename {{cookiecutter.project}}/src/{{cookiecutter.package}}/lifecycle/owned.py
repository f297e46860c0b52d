"""Files `adopt` writes and a user may change: fingerprints, and params.yaml edited in place.

A file adopt writes ends with a fingerprint line: a hash of the rest of the file. While the
hash matches, the file is as adopt (or project generation) wrote it, and adopt may rewrite it; once
the user edits it, it is theirs, and adopt rewrites it only with --force. params.yaml is never
rewritten whole: adopt sets single keys through a round-trip YAML editor, so every comment and
every other value stays as the user left it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

FINGERPRINT = "# adopt-fingerprint: "


class AdoptError(ValueError):
    """A reason `adopt` wrote nothing; the message names it and the fix."""


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamped(text: str) -> str:
    """``text`` with its fingerprint line appended (after two blank lines, as ruff formats a
    module-level comment after a class or function)."""
    text = text.rstrip("\n") + "\n"
    return f"{text}\n\n{FINGERPRINT}{fingerprint(text)}\n"


def split(text: str) -> tuple[str, str | None]:
    """(the text without its fingerprint line, the fingerprint or None)."""
    body, _, last = text.rstrip("\n").rpartition("\n")
    if last.startswith(FINGERPRINT):
        return body.rstrip("\n") + "\n", last.removeprefix(FINGERPRINT).strip()
    return text, None


class State(Enum):
    ABSENT = "absent"  # nothing there yet
    SAME = "same"  # exactly what would be written
    KEPT = "kept"  # the user edited what adopt wrote from this same rendering: theirs stands
    OURS = "ours"  # unchanged since generation or adopt wrote it: may be replaced
    CHANGED = "changed"  # the user's: replaced only with --force


def state(path: Path, rendering: str | None = None) -> State:
    """How the file at ``path`` relates to a new ``rendering`` of it (None: no new rendering)."""
    if not path.exists():
        return State.ABSENT
    body, stamp = split(path.read_text())
    if rendering is not None and stamp == fingerprint(rendering):
        return State.SAME if body == rendering else State.KEPT
    return State.OURS if stamp == fingerprint(body) else State.CHANGED


@dataclass(frozen=True)
class Planned:
    """One file to write: where, what, and why (for the summary)."""

    path: Path
    text: str
    why: str


# --- params.yaml -----------------------------------------------------------------------------


def _editor() -> Any:
    from ruamel.yaml import YAML  # DVC's own YAML library: in every project environment

    editor = YAML()
    editor.width = 4096  # never fold a long line
    editor.indent(mapping=2, sequence=4, offset=2)
    editor.preserve_quotes = True
    return editor


def read_params(path: Path) -> Any:
    return _editor().load(path.read_text())


def dump_params(document: Any) -> str:
    stream = io.StringIO()
    _editor().dump(document, stream)
    return stream.getvalue()


def scalar(value: Any) -> Any:
    """``value`` as YAML that PyYAML (which config/params.py reads with) reads back unchanged: text
    such as "Yes", "1" or "null" is quoted."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, str) and yaml.safe_load(value) != value:
        return DoubleQuotedScalarString(value)
    return value


def flow_list(values: list[str]) -> Any:
    """A list written ``[a, b]`` on the key's line, as params.yaml writes its lists."""
    from ruamel.yaml.comments import CommentedSeq

    sequence = CommentedSeq(scalar(value) for value in values)
    sequence.fa.set_flow_style()
    return sequence


def set_key(document: Any, dotted: str, value: Any, comment: str | None = None) -> bool:
    """Set ``section.key`` (creating the key after its section's last one); True if it changed.
    ``comment`` replaces the key's end-of-line comment."""
    *sections, key = dotted.split(".")
    node = document
    for section in sections:
        node = node[section]
    before = node.get(key, object())
    changed = _plain(before) != _plain(value)
    if changed:
        node[key] = value
    if comment is not None and changed:
        node.yaml_add_eol_comment(comment, key, column=35)
    return changed


def _plain(value: Any) -> Any:
    """A YAML node as plain Python, to compare values regardless of style."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
