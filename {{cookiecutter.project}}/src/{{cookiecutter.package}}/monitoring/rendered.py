"""YAML files rendered from params.yaml (alert rules, the monitor's CronJob): one way to write
them, so every rendered file reads alike and compares byte for byte with a fresh rendering."""

from __future__ import annotations

from typing import Any

import yaml


class Block(str):
    """Text YAML writes as a ``|`` block: multi-line expressions and scripts stay readable."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &anchors: each part of a manifest written out in full


def _block(dumper: yaml.SafeDumper, value: Block) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


_Dumper.add_representer(Block, _block)


def dump(document: dict[str, Any], header: str) -> str:
    """``header`` (comment lines saying how the file is made), then ``document`` in YAML."""
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)
