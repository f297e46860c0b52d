"""Request ids: every prediction can be told apart, and its true outcome joined back to it later.

The service answers every prediction request with an id, in the body (``ID_FIELD``) and in the
``X-Request-ID`` header; a caller's own ``X-Request-ID`` is kept when it is well formed (an
upstream gateway's id then follows the request through), otherwise a fresh one is drawn. A batch
request's records get ``<request id>-<position>``. The sampler stores the id with each kept
record, batch prediction writes it per row, and `feedback` joins labels to predictions by it:
one name (``ID_FIELD``) in responses, samples, batch output and labels files.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

ID_FIELD = "request_id"
HEADER = "X-Request-ID"
# Letters, digits and a few separators (UUIDs, ULIDs, "gateway-7f3a:12"), at most 128: nothing
# that could break a log line, a CSV cell or a file name.
WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~:@+=-]{0,127}$")
_HEADER_KEY = HEADER.lower().encode("latin-1")
# The id of the request being handled, set by ``RequestIds``: the API function runs in the same
# task (or a child of it), so it sees the value without a context parameter.
_CURRENT: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_id() -> str:
    """A fresh random id: 32 hex digits, unique without coordination between workers."""
    return uuid.uuid4().hex


def resolve(offered: str | None) -> str:
    """The caller's id when it is well formed, else a fresh one."""
    if offered and WELL_FORMED.match(offered):
        return offered
    return new_id()


def row_ids(request_id: str, rows: int) -> list[str]:
    """The ids of a batch's records: ``<request id>-0``, ``<request id>-1``, ..."""
    return [f"{request_id}-{row}" for row in range(rows)]


def current() -> str:
    """The id ``RequestIds`` settled for the request being handled (a fresh one outside it)."""
    return _CURRENT.get() or new_id()


class RequestIds:
    """ASGI middleware: settle each request's id before the API sees it (``current``), and
    return it in the ``X-Request-ID`` header of every answer (refusals by other middleware
    included)."""

    def __init__(self, app: Any, paths: tuple[str, ...]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(_HEADER_KEY, b"").decode("latin-1")
        request_id = resolve(offered)
        _CURRENT.set(request_id)
        value = request_id.encode("latin-1")

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_KEY]
                message = {**message, "headers": [*kept, (_HEADER_KEY, value)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
