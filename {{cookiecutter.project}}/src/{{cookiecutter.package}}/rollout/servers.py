"""The two sides of a local canary: `bentoml serve` processes on loopback, started here or
attached to by URL, and stopped with every worker they started."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from {{ cookiecutter.package }}.config import SERVICE


@dataclass
class Server:
    """A `bentoml serve` process on loopback, started here or attached to by URL."""

    name: str
    url: str
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://").rstrip("/")

    def alive(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def processes(self) -> list[psutil.Process]:
        """The server and its workers (which run in sessions of their own)."""
        if self.process is None or self.process.poll() is not None:
            return []
        return family_of(self.process.pid)

    def kill(self) -> None:
        """SIGKILL the server and every worker at once: a crash, as the canary tests need."""
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    def stop(self) -> None:
        """SIGTERM (the server stops its workers), then SIGKILL whatever is left."""
        if self.processes():
            stop_family(self.processes())
            self.process.wait()


def family_of(pid: int) -> list[psutil.Process]:
    """A process and its descendants (a server's workers run in sessions of their own)."""
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_family(family: list[psutil.Process]) -> None:
    """SIGTERM the first (a server stops its workers), then SIGKILL whatever is left."""
    with contextlib.suppress(psutil.NoSuchProcess):
        family[0].terminate()
    _, alive = psutil.wait_procs(family, timeout=15)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def start_server(
    name: str,
    port: int,
    model_env: dict[str, str],
    log: Path,
    service: str = SERVICE,
    working_dir: Path | None = None,
    timeout_s: float = 180.0,
    home: Path | None = None,
) -> Server:
    """`bentoml serve` with the model chosen by ``model_env`` (SERVE_MODEL_*), ready to use."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SERVE_")}
    # Its own BentoML home: `bentoml serve` keeps its Prometheus files in
    # $BENTOML_HOME/prometheus_multiproc_dir and empties that folder when it starts, so two
    # servers sharing a home would wipe and mix each other's /metrics.
    home = home or log.parent / f"{name}-bentoml"
    env |= {"BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(home)} | model_env
    command = [str(Path(sys.executable).parent / "bentoml"), "serve", service]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if working_dir is not None:
        command += ["--working-dir", str(working_dir)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(name, f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the {name} server exited with {process.returncode}; its log {log} ends:\n"
                + log.read_text()[-2000:]
            )
        if server.alive():
            return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"the {name} server was not ready after {timeout_s:.0f}s; see {log}")
