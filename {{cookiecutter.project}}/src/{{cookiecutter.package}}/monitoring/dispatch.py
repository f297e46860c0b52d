"""Ask GitHub to retrain: a ``workflow_dispatch`` of retrain.yml, with the trigger and the reason.

`monitor` sends one request per run that found a reason to retrain (drift, a prediction shift,
a quality drop below its limit)::

    POST {api}/repos/{owner}/{repo}/actions/workflows/retrain.yml/dispatches
    {"ref": "main", "inputs": {"trigger": "quality-dropped", "reason": "roc_auc 0.61 < 0.8 ..."}}

``workflow_dispatch`` needs a token that may only run workflows: a fine-grained personal access
token (or GitHub App token) with the repository permission "Actions: Read and write". It cannot
push code or tags (``champion-*`` tags name the champion), unlike the "Contents: write" a
``repository_dispatch`` needs. Without a token nothing is sent and the request is printed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

TOKEN_ENV = "GITHUB_TOKEN"
REPOSITORY_ENV = "GITHUB_REPOSITORY"
API_URL_ENV = "GITHUB_API_URL"  # set on GitHub Enterprise Server runners
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# The inputs retrain.yml declares under workflow_dispatch: GitHub refuses any other (422).
INPUTS = ("trigger", "reason")
MAX_REASON = 1000  # characters: the reason is a summary; the full record stays in the report
# GitHub answers 204 (or 200 when asked for the run's details) when the run was created.
CREATED = (200, 204)


class MonitorError(ValueError):
    """A problem the user can fix; the message names it and the fix."""


@dataclass(frozen=True)
class Dispatch:
    """One ``workflow_dispatch`` request, as sent or as it would be."""

    url: str
    body: dict[str, Any]
    token: str | None = field(default=None, repr=False)
    method: str = "POST"

    def headers(self, redact: bool = True) -> dict[str, str]:
        shown = "***" if self.token else f"<{TOKEN_ENV} not set>"
        return {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {shown if redact or not self.token else self.token}",
            "X-GitHub-Api-Version": API_VERSION,
            "Content-Type": "application/json",
        }

    @property
    def trigger(self) -> str:
        return self.body["inputs"]["trigger"]

    def describe(self) -> str:
        """The request as text, token redacted: method and URL, headers, blank line, body."""
        lines = [f"{self.method} {self.url}"]
        lines += [f"{name}: {value}" for name, value in self.headers().items()]
        return "\n".join([*lines, "", json.dumps(self.body, indent=2)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": self.headers(),
            "body": self.body,
        }


def target(repository: str | None, api_url: str | None, token: str | None) -> tuple[str, str]:
    """The repository and API base to dispatch to; checked before anything is read."""
    api = (api_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
    if not api.startswith(("http://", "https://")):
        raise MonitorError(f"GitHub API URL {api!r} is not http(s): fix {API_URL_ENV} / --api-url")
    repository = repository or os.environ.get(REPOSITORY_ENV) or ""
    if repository and not REPOSITORY.match(repository):
        raise MonitorError(
            f"repository {repository!r} is not owner/name: pass --repository owner/name "
            f"or set {REPOSITORY_ENV}"
        )
    if token and not repository:
        raise MonitorError(
            f"{TOKEN_ENV} is set but no repository is named: pass --repository owner/name "
            f"or set {REPOSITORY_ENV} (GitHub Actions sets it)"
        )
    return repository or "{owner}/{repo}", api


def request(
    trigger: str,
    reason: str,
    workflow: str,
    ref: str,
    repository: str,
    api_url: str,
    token: str | None,
) -> Dispatch:
    """The workflow_dispatch request that starts ``workflow`` on ``ref`` for ``trigger``."""
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return Dispatch(
        url=f"{api_url}/repos/{repository}/actions/workflows/{workflow}/dispatches",
        body={"ref": ref, "inputs": dict(zip(INPUTS, (trigger, reason), strict=True))},
        token=token,
    )


HINTS = {
    401: f"the token was refused: check {TOKEN_ENV} (expired or mistyped?)",
    403: "the token may not run workflows in this repository: it needs the repository "
    "permission Actions: Read and write (a fine-grained or GitHub App token; README: Monitoring)",
    404: "no such repository or workflow for this token: check --repository / "
    "GITHUB_REPOSITORY, that the token can see it, and monitoring.retrain.workflow",
    422: "GitHub refused the request: the workflow lacks a workflow_dispatch trigger with the "
    f"inputs {', '.join(INPUTS)}, or monitoring.retrain.ref is not a branch",
}


def send(dispatch: Dispatch, timeout: float = 30) -> int:
    """POST the dispatch; anything but GitHub's 'created' answer is one MonitorError."""
    try:
        response = httpx.post(
            dispatch.url,
            headers=dispatch.headers(redact=False),
            content=json.dumps(dispatch.body),
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        raise MonitorError(f"could not reach {dispatch.url}: {error}") from None
    if response.status_code not in CREATED:
        try:
            said = response.json().get("message", "")
        except ValueError:
            said = response.text[:200]
        hint = HINTS.get(response.status_code, "see https://docs.github.com/rest")
        raise MonitorError(
            f"GitHub answered {response.status_code} to POST {dispatch.url} ({said}); {hint}"
        )
    return response.status_code
