"""The champion: where it lives, how it is read back next week, and the one way to promote.

A workflow run starts from a fresh machine, so the champion must live somewhere that outlasts it:

- MLflow on a tracking server: the alias ``champion`` on the server; its metrics are those of
  the champion's run, its model the registered version.
- MLflow in a local file (sqlite, gone with a CI runner): the newest git tag ``champion-*``,
  pushed to origin; its metrics are ``metrics.json`` at that tag, its model ``models/model`` at
  that tag, fetched from the DVC remote.

``promote`` writes both: it moves the MLflow alias (local or server) and tags the commit, so a
project can move from a local store to a server without losing its champion. Every path that
promotes (retraining, a canary that passed, a person) calls ``promote``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.package }}.config import METRICS_FILE, PROMOTION_RECORD, Settings
from {{ cookiecutter.package }}.registry import history
from {{ cookiecutter.package }}.registry.tracking import (
    ModelNotFound,
    client,
    download,
    tracking_uri,
    version_for_alias,
)

ALIAS = "champion"
TAG_PREFIX = "champion-"


@dataclass(frozen=True)
class Champion:
    """The model now in production, and where that fact was read from."""

    source: str  # "mlflow" (tracking server) | "git tag"
    where: str  # the alias on the server, or the tag name
    version: str  # the registered version, or the tagged commit
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def local_store(settings: Settings) -> bool:
    """True when the MLflow store is a file on this machine (gone with a CI runner)."""
    uri = tracking_uri(settings.registry)
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def current(settings: Settings) -> Champion | None:
    """The durable champion, or None when nothing has been promoted yet."""
    if not local_store(settings):
        version = version_for_alias(settings.registry, ALIAS)
        if version is None:
            return None
        name = settings.registry.model_name
        run_id = client(settings.registry).get_model_version(name, version).run_id
        metrics = client(settings.registry).get_run(run_id).data.metrics
        return Champion("mlflow", f"{name}@{ALIAS}", version, dict(metrics))
    tag = newest_tag()
    if tag is None:
        return None
    text = history.show(tag, METRICS_FILE)
    if text is None:
        return None
    record = json.loads(history.git("tag", "-l", "--format=%(contents)", tag).stdout or "{}")
    return Champion("git tag", tag, str(record.get("version", "")), json.loads(text))


def newest_tag() -> str | None:
    """The most recent ``champion-*`` tag (tags are named by UTC time, so names sort)."""
    names = history.git("tag", "--list", f"{TAG_PREFIX}*").stdout.split()
    return max(names) if names else None


def promote(
    settings: Settings, version: str, *, approved_by: str, evidence: dict[str, Any]
) -> dict[str, Any]:
    """Make registered ``version`` the champion: MLflow alias, git tag, promotion record.

    ``approved_by`` says which path decided (retrain, canary, a person); ``evidence`` is what it
    decided on (the decision, the canary analysis), kept with the record.
    """
    registry = settings.registry
    store = client(registry)
    commit, dirty = history.head()
    when = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    registered = _registered(settings, version)
    record = {
        "model_name": registry.model_name,
        "version": version,
        "approved_by": approved_by,
        "workflow_run": workflow_run(),
        "commit": commit,
        "commit_dirty": dirty,
        "data_md5": _data_md5(settings, version) if registered else "",
        "promoted_at": when,
        "evidence": evidence,
    }
    if registered:
        store.set_registered_model_alias(registry.model_name, ALIAS, version)
        for key in ["approved_by", "workflow_run", "commit", "promoted_at"]:
            tag_key = f"promotion.{key}"
            store.set_model_version_tag(registry.model_name, version, tag_key, record[key])
    if commit != "none":
        tag = f"{TAG_PREFIX}{when}"
        message = json.dumps({key: record[key] for key in record if key != "evidence"})
        made = history.git("tag", "-a", tag, "-m", message, commit)
        record["git_tag"] = tag if made.returncode == 0 else None
    _write_record({"promoted": True, **record})
    return record


def keep(reason: str, evidence: dict[str, Any]) -> dict[str, Any]:
    """Record that nothing was promoted, and why (the same file a promotion writes)."""
    record = {"promoted": False, "reason": reason, "workflow_run": workflow_run()}
    record["evidence"] = evidence
    _write_record(record)
    return record


def _write_record(record: dict[str, Any]) -> None:
    PROMOTION_RECORD.parent.mkdir(parents=True, exist_ok=True)
    PROMOTION_RECORD.write_text(json.dumps(record, indent=2, default=str) + "\n")


def workflow_run() -> str:
    """This CI run's URL, or who ran it by hand."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    server, repo, run = (os.environ.get(key) for key in keys)
    if server and repo and run:
        return f"{server}/{repo}/actions/runs/{run}"
    return f"local ({os.environ.get('USER', 'unknown user')})"


def _registered(settings: Settings, version: str) -> bool:
    """Whether the store holds ``version``. A local store is new in every CI job and a release
    there is named by its run (registry/release.py): then the git tag alone records it. A
    tracking server must hold it."""
    import mlflow.exceptions

    registry = settings.registry
    try:
        client(registry).get_model_version(registry.model_name, version)
    except mlflow.exceptions.MlflowException:
        if local_store(settings):
            return False
        raise ModelNotFound(
            f"{registry.model_name} v{version} is not registered in {tracking_uri(registry)}: "
            "run `make repro` against this tracking server first"
        ) from None
    return True


def _data_md5(settings: Settings, version: str) -> str:
    """The DVC hash of the raw data the version was trained on (a lineage tag of its run)."""
    registry = settings.registry
    run_id = client(registry).get_model_version(registry.model_name, version).run_id
    return client(registry).get_run(run_id).data.tags.get("dvc_data_md5", "") if run_id else ""


@dataclass(frozen=True)
class Challenge:
    """The challenger and the champion scored on the same holdout, and the decision."""

    challenger_version: str
    challenger: dict[str, float]
    champion: Champion | None
    champion_scored: dict[str, float] | None  # on this holdout; None when its model is absent
    basis: str  # how the champion's numbers were obtained, in words
    decision: Any  # promotion.Decision

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["decision"] = self.decision.to_dict()
        return record


def challenge(settings: Settings, challenger_dir: Path, holdout: Path, version: str) -> Challenge:
    """Score the challenger and the champion on ``holdout`` and decide (promotion.decide)."""
    from {{ cookiecutter.package }}.registry.promotion import decide

    champion = current(settings)
    challenger = _score(settings, challenger_dir, holdout)
    scored, basis = None, "no champion yet"
    if champion is not None:
        scored, basis = _score_champion(settings, champion, holdout)
    if champion is not None and version_for_alias(settings.registry, ALIAS) == version:
        scored, basis = challenger, "the challenger is the champion already"
    against = scored if scored is not None else (champion.metrics if champion else None)
    promotion = settings.promotion
    decision = decide(
        challenger,
        against,
        primary=settings.evaluate.primary_metric,
        min_delta=promotion.min_delta,
        guardrails=promotion.guardrails,
        floor=settings.evaluate.limit(settings.evaluate.primary_metric),
    )
    return Challenge(version, challenger, champion, scored, basis, decision)


def _score(settings: Settings, model_dir: Path, holdout: Path) -> dict[str, float]:
    from {{ cookiecutter.package }}.contract.validation import inputs
    from {{ cookiecutter.package }}.data import labels, read_table
    from {{ cookiecutter.package }}.modeling.metrics import compute
    from {{ cookiecutter.package }}.modeling.model import load_model

    frame = read_table(holdout)
    scores = load_model(model_dir).predict_proba(inputs(frame))[:, 1]
    return compute(labels(frame, settings.data), scores, settings.evaluate.threshold)


def _score_champion(
    settings: Settings, champion: Champion, holdout: Path
) -> tuple[dict[str, float] | None, str]:
    """The champion's metrics on this holdout, from the first place its model can be read."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "champion"
        found = ""
        version = version_for_alias(settings.registry, ALIAS)
        if version is not None:
            with contextlib.suppress(ModelNotFound):
                download(settings.registry, version, target)
                found = f"the model with alias {ALIAS}"
        if not found and champion.source == "git tag" and _dvc_get(champion.where, target):
            found = f"{champion.where}'s model"
        if found:
            return _score(settings, target, holdout), f"{found} scored on this holdout"
    return None, (
        f"{champion.where}'s model is not reachable here (no MLflow alias, no DVC copy): "
        "compared with the metrics recorded when it was promoted"
    )


def _dvc_get(tag: str, target: Path) -> bool:
    """The model directory as DVC versions it at ``tag`` (from the cache or the remote)."""
    import subprocess

    from {{ cookiecutter.package }}.config import MODEL_DIR

    result = subprocess.run(
        ["dvc", "get", ".", str(MODEL_DIR), "--rev", tag, "-o", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and (target / "meta.json").exists()


def decide_and_promote(
    settings: Settings,
    version: str,
    model_dir: Path,
    holdout: Path,
    *,
    approved_by: str,
    decide_only: bool = False,
) -> list[str]:
    """``make promote``: challenge, then promote the winner or record why the champion stays.

    Returns what happened, one line each, for the command line to print.
    """
    result = challenge(settings, model_dir, holdout, version)
    decision = result.decision
    lines = [f"{result.basis}; {decision.reason}"]
    if decision.promote and not decide_only:
        record = promote(settings, version, approved_by=approved_by, evidence=result.to_dict())
        tag, name = record.get("git_tag") or "-", settings.registry.model_name
        promoted = f"promoted {name} v{version} to champion (git tag {tag}) -> {PROMOTION_RECORD}"
        return [*lines, promoted]
    verdict = "would be promoted (--decide-only)" if decision.promote else "stays challenger"
    keep(f"v{version} {verdict}: {decision.reason}", result.to_dict())
    return [*lines, f"v{version} {verdict} -> {PROMOTION_RECORD}"]
