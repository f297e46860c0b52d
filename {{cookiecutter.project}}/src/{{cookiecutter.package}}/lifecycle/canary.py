"""Local canary: step traffic from the stable server to the canary behind Caddy, judge each step
on the servers' own metrics, then promote the canary or roll it back.

At each step of ``steps`` (percent of traffic to the canary) the controller sets Caddy's
weights, then reads both servers' ``/metrics`` every ``local.poll_seconds``. A step passes after
``interval_seconds`` when the canary served at least ``min_requests`` requests in it and:

- its 5xx share in the step is at most ``max_error_rate``;
- its p95 latency in the step is at most ``max_p95_ratio`` times the stable server's, or
  a binomial test finds its share of requests above that mark within noise (the
  stable server's step p95, or its whole-rollout p95 when it got too few requests, as at 100 %);
- the PSI between the two servers' prediction-score histograms since the rollout began is at
  most ``max_score_psi``, or the difference is within sampling noise (chi-square p-value at
  least ``local.significance``): the ML signal, which a model answering 200 with shifted
  scores fails.

A breach rolls back at once, without waiting for the interval to end. Too few canary requests
by ``interval_seconds + local.max_wait_seconds`` fails closed: it rolls back, because a canary that
was not observed was not shown to be good. A canary that stops answering its ``/metrics``
(crashed, killed) is rolled back at the next poll; Caddy has already been retrying its requests
on the stable server (at 100 % too: the stable server stays behind the canary as the fallback
for retries). Rollback sets the canary's weight to 0 (stable 100) in one admin call;
the stable server and the champion are never touched. After the last step (100 %) the canary's
version is promoted through ``promote``. ``steps: [100]`` is a blue-green switch with the same
analysis and instant rollback.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from {{ cookiecutter.package }}.config import CanarySettings, Settings
from {{ cookiecutter.package }}.lifecycle.caddy import CaddyFront
from {{ cookiecutter.package }}.lifecycle.canary_analysis import (
    Snapshot,
    psi,
    scrape,
    shift_p_value,
    tail_p_value,
)

SERVICE = "{{ cookiecutter.package }}.serving.service:ChurnService"
REPORT = Path("reports/canary.json")
SUMMARY = Path("reports/canary.md")
# Server and Caddy logs and state of the last local rollout.
WORKDIR = Path("build/canary")


# --- the two servers -----------------------------------------------------------------------


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
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the server and every worker at once: a crash, as the canary tests need."""
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    def stop(self) -> None:
        """SIGTERM (the server stops its workers), then SIGKILL whatever is left."""
        family = self.processes()
        if not family:
            return
        family[0].terminate()
        _, alive = psutil.wait_procs(family, timeout=15)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.wait()


def start_server(
    name: str,
    port: int,
    model_env: dict[str, str],
    log: Path,
    service: str = SERVICE,
    working_dir: Path | None = None,
    timeout_s: float = 180.0,
) -> Server:
    """`bentoml serve` with the model chosen by ``model_env`` (SERVE_MODEL_*), ready to use."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SERVE_")}
    # Its own BentoML home: `bentoml serve` keeps its Prometheus files in
    # $BENTOML_HOME/prometheus_multiproc_dir and empties that folder when it starts, so two
    # servers sharing a home would wipe and mix each other's /metrics.
    home = log.parent / f"{name}-bentoml"
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


# --- judging a step --------------------------------------------------------------------------


@dataclass
class Step:
    """One traffic step: what was seen and what was decided."""

    weight: int
    seconds: float = 0.0
    canary_requests: int = 0
    canary_errors: int = 0
    error_rate: float = 0.0
    stable_requests: int = 0
    canary_p95_ms: float | None = None
    stable_p95_ms: float | None = None
    p95_ratio: float | None = None
    psi: float | None = None
    psi_p_value: float | None = None
    p95_p_value: float | None = None
    weights_seconds: float = 0.0
    verdict: str = "running"  # pass | rollback
    reason: str = ""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def measure(
    step: Step,
    canary: Snapshot,
    stable: tuple[Snapshot, Snapshot, Snapshot],
    canary_rollout: Snapshot,
    settings: CanarySettings,
) -> None:
    """Fill ``step`` from the canary's step and rollout deltas and the stable server's
    (step, rollout, lifetime) counts.

    The stable reference is the narrowest window with at least ``enough`` requests: the same
    step (same load, same moment), else the rollout so far (at 100 % the stable gets nothing),
    else everything it served since it started (a blue-green switch has no earlier step).
    """
    step.canary_requests, step.canary_errors = canary.requests, canary.errors
    step.error_rate = round(canary.error_rate, 4)
    step.stable_requests = stable[0].requests
    enough = settings.min_requests
    reference = next((window for window in stable if window.requests >= enough), stable[-1])
    canary_p95, stable_p95 = canary.p95, reference.p95
    step.canary_p95_ms, step.stable_p95_ms = _ms(canary_p95), _ms(stable_p95)
    step.p95_ratio = (
        round(canary_p95 / stable_p95, 3) if canary_p95 is not None and stable_p95 else None
    )
    if stable_p95:
        tail = tail_p_value(canary.latency, settings.max_p95_ratio * stable_p95)
        step.p95_p_value = None if tail is None else float(f"{tail:.3g}")
    scores = next((window for window in stable[1:] if window.requests >= enough), stable[-1])
    shift = psi(scores.scores, canary_rollout.scores)
    step.psi = None if shift is None else round(shift, 4)
    p_value = shift_p_value(scores.scores, canary_rollout.scores)
    step.psi_p_value = None if p_value is None else float(f"{p_value:.3g}")


def significant(
    value: float | None, limit: float, p_value: float | None, significance: float
) -> bool:
    """``value`` beyond ``limit``, and its test says that is not the noise of a small sample."""
    return value is not None and value > limit and p_value is not None and p_value < significance


def breach(step: Step, settings: CanarySettings) -> str | None:
    """Why the step fails, or None while it holds."""
    if step.error_rate > settings.max_error_rate:
        return (
            f"error rate {step.error_rate * 100:.1f}% "
            f"({step.canary_errors}/{step.canary_requests}) "
            f"> max_error_rate {settings.max_error_rate * 100:.1f}%"
        )
    significance = settings.local.significance
    if significant(step.p95_ratio, settings.max_p95_ratio, step.p95_p_value, significance):
        return (
            f"p95 {step.canary_p95_ms} ms is {step.p95_ratio}x stable's {step.stable_p95_ms} ms "
            f"> max_p95_ratio {settings.max_p95_ratio} (binomial p={step.p95_p_value} "
            f"< {significance}: not noise)"
        )
    if significant(step.psi, settings.max_score_psi, step.psi_p_value, significance):
        return (
            f"prediction-score PSI {step.psi} > max_score_psi {settings.max_score_psi} "
            f"(chi-square p={step.psi_p_value} < {significance}: not noise)"
        )
    return None


# --- the rollout ------------------------------------------------------------------------------


@dataclass
class Rollout:
    verdict: str = "running"  # promoted | rolled_back
    reason: str = ""
    version: str | None = None
    steps: list[Step] = field(default_factory=list)
    started_at: float = 0.0
    first_error_seen_at: float | None = None
    decided_at: float | None = None
    promotion: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_rollout(
    settings: CanarySettings,
    stable: Server,
    canary: Server,
    front: CaddyFront,
    version: str | None = None,
    promote: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
    on_step: Callable[[Step, int, int], None] | None = None,
    on_poll: Callable[[Step, int, int], None] | None = None,
) -> Rollout:
    """Step the weights and judge each step; promote at the end or roll back on a breach."""
    rollout = Rollout(version=version, started_at=time.time(), settings=settings.model_dump())
    try:
        start = (scrape(canary.url), scrape(stable.url))
    except httpx.HTTPError as error:
        reason = f"metrics unreadable before the first step: {error}"
        return _rollback(rollout, front, stable, canary, reason)
    for number, weight in enumerate(settings.steps, 1):
        step = Step(weight)
        rollout.steps.append(step)
        weights = {stable.address: 100 - weight, canary.address: weight}
        step.weights_seconds = round(front.set_weights(weights, fallback=stable.address), 4)

        def polled(step: Step, number: int = number) -> None:
            if on_poll is not None:
                on_poll(step, number, len(settings.steps))

        reason = _watch_step(settings, step, stable, canary, start, rollout, polled)
        if on_step is not None:
            on_step(step, number, len(settings.steps))
        if reason is not None:
            return _rollback(rollout, front, stable, canary, reason)
    rollout.verdict, rollout.decided_at = "promoted", time.time()
    rollout.reason = f"every step held up to 100 % ({len(settings.steps)} step(s))"
    if promote is not None and version is not None:
        rollout.promotion = promote(version, rollout.to_dict())
    return rollout


def _watch_step(
    settings: CanarySettings,
    step: Step,
    stable: Server,
    canary: Server,
    start: tuple[Snapshot, Snapshot],
    rollout: Rollout,
    polled: Callable[[Step], None],
) -> str | None:
    """Poll until the step passes (None) or fails (the reason)."""
    began = time.monotonic()
    try:
        at_step = (scrape(canary.url), scrape(stable.url))
    except httpx.HTTPError as error:
        step.verdict, step.reason = "rollback", f"a server stopped answering: {error}"
        return step.reason
    while True:
        time.sleep(settings.local.poll_seconds)
        step.seconds = round(time.monotonic() - began, 2)
        try:
            now_canary = scrape(canary.url)
        except httpx.HTTPError as error:
            step.verdict = "rollback"
            step.reason = f"the canary stopped answering ({type(error).__name__})"
            return step.reason
        try:
            now_stable = scrape(stable.url)
        except httpx.HTTPError as error:
            step.verdict = "rollback"
            step.reason = f"the stable server stopped answering ({type(error).__name__})"
            return step.reason
        canary_step = now_canary - at_step[0]
        stable_windows = (now_stable - at_step[1], now_stable - start[1], now_stable)
        measure(step, canary_step, stable_windows, now_canary - start[0], settings)
        polled(step)
        if canary_step.errors and rollout.first_error_seen_at is None:
            rollout.first_error_seen_at = time.time()
        enough = step.canary_requests >= settings.min_requests
        if enough and (reason := breach(step, settings)) is not None:
            step.verdict, step.reason = "rollback", reason
            return reason
        if enough and step.seconds >= settings.interval_seconds:
            step.verdict, step.reason = "pass", "every threshold held"
            return None
        if step.seconds >= settings.interval_seconds + settings.local.max_wait_seconds:
            step.verdict = "rollback"
            step.reason = (
                f"only {step.canary_requests} canary request(s) in {step.seconds:.0f}s "
                f"(min_requests {settings.min_requests}): not enough evidence, failing closed"
            )
            return step.reason


def _rollback(
    rollout: Rollout, front: CaddyFront, stable: Server, canary: Server, reason: str
) -> Rollout:
    front.set_weights({stable.address: 100, canary.address: 0})
    rollout.verdict, rollout.reason, rollout.decided_at = "rolled_back", reason, time.time()
    return rollout


# --- promotion and reports -------------------------------------------------------------------


def promote_version(
    settings: Settings, version: str, evidence: dict[str, Any], approved_by: str
) -> dict[str, Any]:
    """Promote through the project's one promotion function (MLflow alias, git tag, record)."""
    from {{ cookiecutter.package }}.lifecycle.champion import promote

    return promote(settings, version, approved_by=approved_by, evidence=evidence)


def summary(rollout: Rollout) -> str:
    """Markdown: the verdict, then one row per step."""
    head = "promoted" if rollout.verdict == "promoted" else "rolled back"
    version = f"version {rollout.version}" if rollout.version else "the canary"
    lines = [
        f"## Canary: {version} {head}",
        "",
        f"**{rollout.reason}**",
        "",
        "| step | canary % | s | canary requests | errors | p95 ms (canary / stable) "
        "| p95 ratio | score PSI | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for number, step in enumerate(rollout.steps, 1):
        lines.append(
            f"| {number} | {step.weight} | {step.seconds:.1f} | {step.canary_requests} "
            f"| {step.error_rate * 100:.1f}% | {step.canary_p95_ms} / {step.stable_p95_ms} "
            f"| {step.p95_ratio} | {step.psi} | {step.verdict}: {step.reason} |"
        )
    if rollout.promotion:
        keys = ("model_name", "version", "approved_by", "git_tag")
        shown = {key: rollout.promotion.get(key) for key in keys}
        lines += ["", f"Promotion: `{json.dumps(shown)}`"]
    return "\n".join(lines) + "\n"


def write_reports(rollout: Rollout, report: Path = REPORT, markdown: Path = SUMMARY) -> None:
    """canary.json, the markdown summary, and the GitHub job summary when there is one."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(rollout.to_dict(), indent=2) + "\n")
    text = summary(rollout)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)
    if job_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(job_summary, "a") as handle:
            handle.write(text)


def step_line(step: Step, number: int, total: int) -> str:
    """One progress line per step, as the rollout goes."""
    return (
        f"step {number}/{total}  canary {step.weight:>3}%  {step.seconds:5.1f}s  "
        f"requests {step.canary_requests:>5}  errors {step.error_rate * 100:5.1f}%  "
        f"p95 {step.canary_p95_ms} ms (x{step.p95_ratio})  PSI {step.psi}  "
        f"{step.verdict.upper()}: {step.reason}"
    )


# --- one local rollout, end to end (the `canary` command) -------------------------------------


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
) -> tuple[Rollout, dict[str, Any] | None]:
    """Start (or attach to) both servers and Caddy, replay records if given, run the rollout.

    A side with no URL whose port already answers ``/readyz`` is attached to, not started.
    Returns the rollout and what the replay clients saw. Everything started here is stopped at
    the end unless ``keep_running``; a rolled-back canary started here is stopped in any case.
    """
    from {{ cookiecutter.package }}.lifecycle.traffic import Replay

    started: list[Server] = []
    front = CaddyFront(settings.local.front_port, settings.local.admin_port, workdir / "caddy")
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
        if not keep_running:
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
            WORKDIR,
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
    from {{ cookiecutter.package }}.lifecycle import champion
    from {{ cookiecutter.package }}.lifecycle.registry import tracking_uri, version_for_alias
    from {{ cookiecutter.package }}.lifecycle.traffic import read_records
    from {{ cookiecutter.package }}.serving.choice import ModelNotFound

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
