"""A loopback stand-in for the GitHub API: records every request, answers like GitHub."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "ghp_test-token-never-printed"


class GitHub(ThreadingHTTPServer):
    """Records every request; answers with ``status`` (204 is GitHub's success)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.status = 204

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self) -> list[dict]:
        return [json.loads(request["body"]) for request in self.requests]


class Handler(BaseHTTPRequestHandler):
    server: GitHub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append(
            {"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body}
        )
        if self.server.status == 204:
            self.send_response(204)
            self.end_headers()
            return
        answer = json.dumps({"message": "Resource not accessible by personal access token"})
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@contextmanager
def running() -> Iterator[GitHub]:
    """A stand-in serving on a free loopback port until the block ends."""
    server = GitHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
