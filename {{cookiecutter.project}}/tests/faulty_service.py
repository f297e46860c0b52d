"""TEST ONLY: the real service with a fault injected, for the canary tests.

`bentoml serve faulty_service:ModelService --working-dir tests` serves the shipped service with
its model call wrapped, so a fault shows in the server's own /metrics exactly as a really
failing model would: an exception becomes BentoML's 500, a slow model a slow request.

- ``FAULT_ERROR_RATE``: share of model calls that raise (0..1);
- ``FAULT_DELAY_SECONDS``: added to every model call.
"""

from __future__ import annotations

import os
import random
import time

from {{ cookiecutter.package }}.serving import service

ERROR_RATE = float(os.environ.get("FAULT_ERROR_RATE", "0"))
DELAY_SECONDS = float(os.environ.get("FAULT_DELAY_SECONDS", "0"))
real_score = service.ModelService.inner.score


def faulty_score(self, records):
    if DELAY_SECONDS:
        time.sleep(DELAY_SECONDS)
    if random.random() < ERROR_RATE:
        raise RuntimeError("injected fault: the model failed")
    return real_score(self, records)


service.ModelService.inner.score = faulty_score
ModelService = service.ModelService
