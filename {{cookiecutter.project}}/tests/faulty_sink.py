"""TEST ONLY: the real service with a sample sink that fails on demand (tests/test_sink_faults.py).

`bentoml serve faulty_sink:ModelService --working-dir tests` serves the shipped service with the
sampler's file append wrapped. Before each append it reads the file named by
``FAULT_SINK_FILE``, which the test rewrites while the server runs:

- ``enospc``: the append raises OSError(ENOSPC), as on a full disk;
- ``eacces``: it raises PermissionError(EACCES), as in a read-only directory;
- ``hang``: it blocks until the file says otherwise (a hung network mount), then appends;
- empty, or no file: it appends.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from {{ cookiecutter.package }}.serving import sampling, service

CONTROL = Path(os.environ["FAULT_SINK_FILE"])
ERRORS = {"enospc": (OSError, errno.ENOSPC), "eacces": (PermissionError, errno.EACCES)}
real_append = sampling.append_lines


def fault() -> str:
    try:
        return CONTROL.read_text().strip()
    except FileNotFoundError:
        return ""


def faulty_append(path: Path, data: bytes) -> None:
    while fault() == "hang":
        time.sleep(0.05)
    if (now := fault()) in ERRORS:
        kind, code = ERRORS[now]
        raise kind(code, os.strerror(code), str(path))
    real_append(path, data)


sampling.append_lines = faulty_append
ModelService = service.ModelService
