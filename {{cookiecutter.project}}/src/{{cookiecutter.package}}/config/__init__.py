"""params.yaml as typed settings, and the files the pipeline passes between stages.

Every module reads its settings from ``load_settings()``, never from a raw dict, so a bad value
is caught once, here, with one line naming the key, the value and what is allowed. Every default
lives in params.yaml: these models declare types and bounds, not values.
"""

from __future__ import annotations

# One namespace for callers: `config.MODEL_DIR`, `from {{ cookiecutter.package }}.config import Settings`.
from {{ cookiecutter.package }}.config.params import *  # noqa: F403  reading params.yaml, rendered files
from {{ cookiecutter.package }}.config.paths import *  # noqa: F403  every path, named once there
from {{ cookiecutter.package }}.config.settings import *  # noqa: F403  the params.yaml sections
