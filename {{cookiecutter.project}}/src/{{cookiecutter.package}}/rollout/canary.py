"""One local canary, end to end (the `canary` command): which versions meet, how each side is
reached, Caddy in front, replayed traffic, then the rollout loop (``loop.py``) and promotion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from {{ cookiecutter.package }}.config import (
    CANARY_REPORT,
    CANARY_SUMMARY,
    CANARY_WORKDIR,
    SERVICE,
    CanarySettings,
    Settings,
)
from {{ cookiecutter.package }}.rollout.caddy import CaddyFront
from {{ cookiecutter.package }}.rollout.loop import Rollout, run_rollout, write_reports
from {{ cookiecutter.package }}.rollout.servers import Server, start_server
from {{ cookiecutter.package }}.rollout.steps import Step, step_line


def promote_version(
    settings: Settings, version: str, evidence: dict[str, Any], approved_by: str
) -> dict[str, Any]:
    """Promote through the project's one promotion function (MLflow alias, git tag, record)."""
    from {{ cookiecutter.package }}.registry.champion import promote

    return promote(settings, version, approved_by=approved_by, evidence=evidence)


@dataclass
class Sides:
    """How to reach each side: a URL to attach to, else the SERVE_MODEL_* env to start it with."""

    stable_env: dict[str, str]
    canary_env: dict[str, str]
    stable_url: str | None = None
    canary_url: str | None = None
    service: str = SERVICE
    working_dir: Path | None = None


def local_rollout(
    settings: CanarySettings,
    sides: Sides,
    workdir: Path,
    version: str | None,
    promote: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
    replay: list[dict[str, Any]] | None = None,
    keep_running: bool = False,
    echo: Callable[[str], None] = print,
    front: CaddyFront | None = None,
) -> tuple[Rollout, dict[str, Any] | None]:
    """Start (or attach to) both servers and Caddy, replay records if given, run the rollout.

    A side with no URL whose port already answers ``/readyz`` is attached to, not started; so
    is a running ``front`` (a serving host's, rollout/host.py). Returns the rollout and what the
    replay clients saw. Everything started here is stopped at the end unless ``keep_running``;
    a rolled-back canary started here is stopped in any case.
    """
    from {{ cookiecutter.package }}.rollout.traffic import Replay

    started: list[Server] = []
    attached = front is not None
    front = front or CaddyFront(
        settings.local.front_port, settings.local.admin_port, workdir / "caddy"
    )
    try:
        servers = []
        for name, url, port, env in (
            ("stable", sides.stable_url, settings.local.stable_port, sides.stable_env),
            ("canary", sides.canary_url, settings.local.canary_port, sides.canary_env),
        ):
            running = Server(name, url or f"http://127.0.0.1:{port}")
            if url or running.alive():  # attach: e.g. a systemd unit keeps it serving
                servers.append(running)
                echo(f"{name}: attached to {running.url}")
                continue
            log = workdir / f"{name}.log"
            timeout = settings.local.start_timeout_seconds
            servers.append(
                start_server(name, port, env, log, sides.service, sides.working_dir, timeout)
            )
            started.append(servers[-1])
        stable, canary = servers
        if attached:
            front.set_weights({stable.address: 100, canary.address: 0})
        else:
            front.start({stable.address: 100, canary.address: 0})
        echo(f"front {front.url} -> stable {stable.url}, canary {canary.url}")

        with Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True
        ) as bar:
            task = bar.add_task("first step", total=settings.interval_seconds)

            def show(step: Step, number: int, total: int) -> None:
                line = step_line(step, number, total)
                bar.console.print(line, highlight=False, markup=False, soft_wrap=True)

            def poll(step: Step, number: int, total: int) -> None:
                bar.update(
                    task,
                    description=f"step {number}/{total} canary {step.weight}%: "
                    f"{step.canary_requests} requests, {step.error_rate * 100:.1f}% errors",
                    completed=min(step.seconds, settings.interval_seconds),
                )

            replaying = (
                Replay(front.url, replay, max_seconds=_longest(settings))
                if replay
                else contextlib.nullcontext()
            )
            with replaying as clients:
                rollout = run_rollout(settings, stable, canary, front, version, promote, show, poll)
            traffic = clients.traffic.to_dict() if replay else None
        if rollout.verdict == "rolled_back" and canary in started:
            canary.stop()
        return rollout, traffic
    finally:
        if not keep_running and not attached:
            front.stop()
            for server in started:
                server.stop()


def _longest(settings: CanarySettings) -> float:
    per_step = (
        settings.interval_seconds + settings.local.max_wait_seconds + settings.local.poll_seconds
    )
    return len(settings.steps) * per_step + 60


@dataclass
class Plan:
    """A local rollout, resolved from params.yaml, the registry and the command's options."""

    project: Settings
    settings: CanarySettings
    sides: Sides
    version: str | None
    replay: list[dict[str, Any]] | None
    headline: str

    def run(
        self, approved_by: str, keep_running: bool, echo: Callable[[str], None]
    ) -> tuple[Rollout, dict[str, Any] | None]:
        def promote(version: str, evidence: dict[str, Any]) -> dict[str, Any]:
            return promote_version(self.project, version, evidence, approved_by)

        return local_rollout(
            self.settings,
            self.sides,
            CANARY_WORKDIR,
            self.version,
            promote if self.version else None,
            self.replay,
            keep_running,
            echo,
        )


def plan(
    settings: Settings,
    version: str | None,
    stable_url: str | None,
    canary_url: str | None,
    replay: Path | None,
    overrides: dict[str, Any],
) -> Plan:
    """Which versions meet, how each side is reached, what traffic is replayed.

    The canary is ``version`` (default: the registry's challenger); the stable side serves the
    champion. With no champion yet (a first deploy), the stable side serves the challenger
    itself: the rollout then checks errors and latency of the new version under the front,
    and its success makes it the first champion.
    """
    from {{ cookiecutter.package }}.registry import champion
    from {{ cookiecutter.package }}.registry.tracking import (
        ModelNotFound,
        tracking_uri,
        version_for_alias,
    )
    from {{ cookiecutter.package }}.rollout.traffic import read_records

    canary_settings = CanarySettings.model_validate(settings.canary.model_dump() | overrides)
    registry = settings.registry
    if version is None and canary_url is None:
        version = version_for_alias(registry, registry.alias)
        if version is None:
            raise ModelNotFound(
                f"no version of {registry.model_name!r} has alias {registry.alias!r} in "
                f"{tracking_uri(registry)}: run `make repro` to register one, or pass --version"
            )
    current = champion.current(settings)
    champion_version = current.version if current else None
    stable_version = champion_version or version
    records = read_records(replay) if replay is not None else None
    sides = Sides(
        stable_env={"SERVE_MODEL_VERSION": stable_version} if stable_version else {},
        canary_env={"SERVE_MODEL_VERSION": version} if version else {},
        stable_url=_url(stable_url),
        canary_url=_url(canary_url),
    )
    against = (
        f"champion v{champion_version} ({current.where})"
        if current
        else "itself (no champion yet: this rollout checks errors and latency, then promotes)"
    )
    headline = f"canary: {registry.model_name} v{version or '?'} against {against}; " + (
        f"replaying {len(records)} records from {replay}" if records else "live traffic only"
    )
    return Plan(settings, canary_settings, sides, version, records, headline)


def _url(address: str | None) -> str | None:
    """``:3000`` or ``host:port`` or a full URL -> ``http://host:port``."""
    if not address:
        return None
    address = address.removeprefix("http://").rstrip("/")
    return f"http://{'127.0.0.1' if address.startswith(':') else ''}{address}"


def run_canary(
    settings: Settings,
    *,
    version: str | None = None,
    stable_url: str | None = None,
    canary_url: str | None = None,
    replay: Path | None = None,
    steps: str | None = None,
    interval: int | None = None,
    approved_by: str = "local",
    keep_running: bool = False,
    echo: Callable[[str], None] = print,
) -> Rollout:
    """``make canary``: plan, roll out, write the reports; ``steps`` is e.g. ``"25,100"``."""
    overrides: dict[str, Any] = {}
    if steps:
        overrides["steps"] = [int(step) for step in steps.split(",")]
    if interval is not None:
        overrides["interval_seconds"] = interval
    rollout_plan = plan(settings, version, stable_url, canary_url, replay, overrides)
    echo(rollout_plan.headline)
    rollout, traffic = rollout_plan.run(approved_by, keep_running, echo)
    write_reports(rollout)
    sent = f"; replayed {traffic['sent']} requests, {traffic['failed']} failed" if traffic else ""
    echo(f"{rollout.verdict.upper()}: {rollout.reason}{sent}")
    echo(f"analysis -> {CANARY_REPORT}, {CANARY_SUMMARY}")
    return rollout
