"""The rollout loop: set Caddy's weights step by step, judge each step on the servers' own
metrics, then promote the canary or roll it back.

At each step of ``steps`` (percent of traffic to the canary) the controller sets Caddy's
weights, then reads both servers' ``/metrics`` every ``local.poll_seconds`` and judges the step
(``steps.py``). A breach rolls back at once, without waiting for the interval to end. Too few
canary requests by ``interval_seconds + local.max_wait_seconds`` fails closed: it rolls back,
because a canary that was not observed was not shown to be good. A canary that stops answering
its ``/metrics`` (crashed, killed) is rolled back at the next poll; Caddy has already been
retrying its requests on the stable server (at 100 % too: the stable server stays behind the
canary as the fallback for retries). Rollback sets the canary's weight to 0 (stable 100) in one
admin call; the stable server and the champion are never touched. After the last step (100 %)
the canary's version is promoted through the one promotion function. ``steps: [100]`` is a
blue-green switch with the same analysis and instant rollback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from {{ cookiecutter.package }}.config import CANARY_REPORT, CANARY_SUMMARY, CanarySettings
from {{ cookiecutter.package }}.rollout.analysis import Snapshot, scrape
from {{ cookiecutter.package }}.rollout.caddy import CaddyFront
from {{ cookiecutter.package }}.rollout.servers import Server
from {{ cookiecutter.package }}.rollout.steps import Step, breach, measure


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


def write_reports(
    rollout: Rollout, report: Path = CANARY_REPORT, markdown: Path = CANARY_SUMMARY
) -> None:
    """canary.json, the markdown summary, and the GitHub job summary when there is one."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(rollout.to_dict(), indent=2) + "\n")
    text = summary(rollout)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)
    if job_summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(job_summary, "a") as handle:
            handle.write(text)
