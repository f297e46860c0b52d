"""Releases on the serving host: the bento deploy.yml built, rolled out without docker behind a
front that stays up between deploys.

What outlives a deploy job lives in one directory, ``canary.local.home`` (env ``SERVING_HOME``
overrides it): a BentoML store with the imported bentos, ``serving.json`` (the stable side: its
port, bento and model), and for each process (the front's two Caddy processes, one bento server
per port) a pid file and a log. A release:

1. brings up what is missing, e.g. after a reboot (``up``, which the systemd unit also runs):
   the stable server and the front, the public listener on ``front_host:front_port``;
2. starts the new bento on the other of ``stable_port`` and ``canary_port`` as the canary (a
   first release, with no stable side yet, is rolled out against a second copy of itself);
3. steps the weights and judges each step (loop.py), replaying the holdout that travelled with
   the bento;
4. passed: the canary becomes the stable side and the old server stops, while the front keeps
   listening. Rolled back (also by ``rollback``, which deploy.yml runs when the job fails or is
   cancelled): every request to the stable side, and the canary stops.

Nothing here decides promotion: deploy.yml decided before any traffic moved, and records the
champion once this passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.config import BENTO_DIR, BENTO_RECORD, CanarySettings
from {{ cookiecutter.package }}.rollout.caddy import CaddyFront
from {{ cookiecutter.package }}.rollout.canary import Sides, local_rollout
from {{ cookiecutter.package }}.rollout.loop import Rollout, write_reports
from {{ cookiecutter.package }}.rollout.servers import Server, family_of, start_server, stop_family

STATE = "serving.json"


@dataclass
class Host:
    settings: CanarySettings
    home: Path

    @classmethod
    def of(cls, settings: CanarySettings) -> Host:
        home = os.environ.get("SERVING_HOME") or settings.local.home
        return cls(settings, Path(home).expanduser().resolve())

    # --- what the host keeps -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        path = self.home / STATE
        return json.loads(path.read_text()) if path.exists() else {}

    def save(self, state: dict[str, Any]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / STATE).write_text(json.dumps(state, indent=2) + "\n")

    def front(self) -> CaddyFront:
        local = self.settings.local
        directory = self.home / "front"
        directory.mkdir(parents=True, exist_ok=True)
        return CaddyFront(
            local.front_port, local.admin_port, directory, local.front_host, directory
        )

    def stop(self, name: str) -> None:
        pidfile = self.home / "pids" / f"{name}.pid"
        if pidfile.exists():
            family = family_of(int(pidfile.read_text()))
            if family:
                stop_family(family)
            pidfile.unlink()

    def _pid(self, name: str, pid: int) -> None:
        (self.home / "pids").mkdir(parents=True, exist_ok=True)
        (self.home / "pids" / f"{name}.pid").write_text(f"{pid}\n")

    # --- servers and the front ---------------------------------------------------------------

    def serve(self, port: int, bento: str) -> Server:
        """`bentoml serve` of an imported bento on ``port``, started anew."""
        name = f"bento-{port}"
        self.stop(name)
        # Its own BentoML home (its own Prometheus files), the host's bentos and models in it.
        home = self.home / "servers" / str(port)
        home.mkdir(parents=True, exist_ok=True)
        for folder in ("bentos", "models"):
            (self.home / "bentoml" / folder).mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                (home / folder).symlink_to(self.home / "bentoml" / folder)
        log = self.home / "logs" / f"{name}.log"
        timeout = self.settings.local.start_timeout_seconds
        try:
            server = start_server(name, port, {}, log, bento, None, timeout, home)
        except RuntimeError:
            raise ValueError(f"{bento} did not start serving on port {port}: see {log}") from None
        self._pid(name, server.process.pid)
        return Server(name, server.url)

    def up(self) -> tuple[CaddyFront, Server | None]:
        """The front and the stable server, each started if it is not answering."""
        stable = self.state().get("stable")
        server = None
        if stable:
            server = Server("stable", f"http://127.0.0.1:{stable['port']}")
            server = server if server.alive() else self.serve(stable["port"], stable["bento"])
        front = self.front()
        if not front.running():
            for name in ("caddy-splitter", "caddy-edge"):
                self.stop(name)
            (front.socket_dir / "split.sock").unlink(missing_ok=True)
            first = server.address if server else f"127.0.0.1:{self.settings.local.stable_port}"
            front.start({first: 100})
            names = ("caddy-splitter", "caddy-edge")
            for name, process in zip(names, front.processes, strict=True):
                self._pid(name, process.pid)
        return front, server

    def import_bento(self, record: dict[str, Any]) -> str:
        """The exported bento file into the host's store, after checking its digest."""
        path = BENTO_DIR / record["file"]
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != record["digest"]:
            raise ValueError(f"{path} has digest {digest}, not {record['digest']} as recorded")
        store = self.home / "bentoml"
        if not (store / "bentos" / record["bento"].replace(":", "/")).exists():
            bentoml = Path(sys.executable).parent / "bentoml"
            env = os.environ | {"BENTOML_HOME": str(store), "BENTOML_DO_NOT_TRACK": "True"}
            done = subprocess.run(
                [str(bentoml), "import", str(path.resolve())],
                capture_output=True,
                text=True,
                env=env,
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise ValueError(f"bentoml import {path} failed: {last}")
        return record["bento"]

    # --- a release ---------------------------------------------------------------------------

    def release(
        self, replay: list[dict[str, Any]] | None, echo: Callable[[str], None] = print
    ) -> Rollout:
        """Roll out the bento in BENTO_DIR against the stable side; see the module docstring."""
        if not BENTO_RECORD.exists():
            raise FileNotFoundError(
                f"{BENTO_RECORD} not found: download the deploy run's `release` artifact "
                "(deploy.yml does), or build one with `make release-bento`"
            )
        record = json.loads(BENTO_RECORD.read_text())
        bento = self.import_bento(record)
        front, stable = self.up()
        local = self.settings.local
        taken = stable.address.rsplit(":", 1)[1] if stable else ""
        port = local.canary_port if taken == str(local.stable_port) else local.stable_port
        canary = self.serve(port, bento)
        if stable is None:  # a first release: against a second copy of itself
            other = local.canary_port if port == local.stable_port else local.stable_port
            stable = self.serve(other, bento)
        echo(f"front {front.url}: stable {stable.url}, canary {canary.url} ({bento})")
        sides = Sides({}, {}, stable.url, canary.url)
        version = record["model"]["version"]
        rollout, _ = local_rollout(
            self.settings, sides, self.home / "canary", version, None, replay, True, echo, front
        )
        write_reports(rollout)
        if rollout.verdict != "promoted":
            self.rollback()
            return rollout
        front.set_weights({canary.address: 100})
        self.stop(f"bento-{stable.address.rsplit(':', 1)[1]}")
        self.save({"stable": {"port": port, "bento": bento, **record}})
        echo(f"stable side: {bento} on {canary.url}, behind {front.url}")
        return rollout

    def rollback(self) -> str:
        """Every request to the stable side, the canary stopped; safe to run at any time."""
        stable = self.state().get("stable")
        local = self.settings.local
        front = self.front()
        if stable and front.running():
            front.set_weights({f"127.0.0.1:{stable['port']}": 100})
        for port in (local.stable_port, local.canary_port):
            if not stable or port != stable["port"]:
                self.stop(f"bento-{port}")
        return f"stable side: {stable['bento'] if stable else 'none yet'}; canary stopped"
