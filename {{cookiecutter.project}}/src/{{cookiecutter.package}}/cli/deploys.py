"""Deploys: the local canary, releases (deploy.yml) and their rollout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from {{ cookiecutter.package }} import config
from {{ cookiecutter.package }}.cli.app import app, console, friendly


@app.command(rich_help_panel="Deploys")
@friendly
def canary(
    version: Annotated[
        str | None, typer.Option(help="registered version to roll out (default: the challenger)")
    ] = None,
    stable_url: Annotated[
        str | None, typer.Option(help="attach to this running stable server, e.g. :3000")
    ] = None,
    canary_url: Annotated[
        str | None, typer.Option(help="attach to this running canary server")
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(help="records (.csv/.parquet) sent through the front during the rollout"),
    ] = config.TEST_SPLIT,
    live: Annotated[
        bool, typer.Option("--live", help="send no records: judge live client traffic only")
    ] = False,
    steps: Annotated[
        str | None, typer.Option(help="override canary.steps, e.g. 100 for blue-green")
    ] = None,
    interval: Annotated[int | None, typer.Option(help="override canary.interval_seconds")] = None,
    approved_by: Annotated[
        str, typer.Option(envvar="GITHUB_ACTOR", help="who approved (GitHub: the actor)")
    ] = "local",
    keep_running: Annotated[
        bool, typer.Option(help="leave Caddy and the winning server running afterwards")
    ] = False,
) -> None:
    """Local canary: champion vs challenger behind Caddy; promote, or roll back and exit 1."""
    from {{ cookiecutter.package }}.rollout.canary import run_canary

    rollout = run_canary(
        config.load_settings(),
        version=version,
        stable_url=stable_url,
        canary_url=canary_url,
        replay=None if live else replay,
        steps=steps,
        interval=interval,
        approved_by=approved_by,
        keep_running=keep_running,
        echo=lambda line: console.print(line, highlight=False, markup=False),
    )
    if rollout.verdict != "promoted":
        raise typer.Exit(1)


# --- releases (deploy.yml): what a merged commit built, taken up again without retraining ------


@app.command("release-record", rich_help_panel="Deploys")
@friendly
def release_record() -> None:
    """After the pipeline ran on a merged commit (train.yml): the release record, build/release."""
    from {{ cookiecutter.package }}.registry.release import record

    console.print(f"release record -> {record(config.load_settings())}", highlight=False)


@app.command("release-apply", rich_help_panel="Deploys")
@friendly
def release_apply(
    pull: Annotated[bool, typer.Option(help="also pull the outputs and check them")] = False,
) -> None:
    """Commit the release record on the merged commit; with --pull, fetch and check its outputs."""
    from {{ cookiecutter.package }}.registry.release import apply

    console.print("\n".join(apply(pull)), highlight=False, markup=False)


@app.command("release-decision", rich_help_panel="Deploys")
@friendly
def release_decision() -> None:
    """After `promote --decide-only`: roll out or not, and why (GitHub: output `promote`)."""
    from {{ cookiecutter.package }}.registry.release import decision

    console.print(decision(), highlight=False, markup=False)


@app.command("release-promote", rich_help_panel="Deploys")
@friendly
def release_promote(
    approved_by: Annotated[str, typer.Option(help="what approved: the canary")] = "canary",
) -> None:
    """After the rollout passed: promote the release as decided before it began."""
    from {{ cookiecutter.package }}.registry.release import promote

    done = promote(config.load_settings(), approved_by)
    console.print(f"champion: {done['model_name']} {done['version']} ({done.get('git_tag')})")


@app.command("export-bento", rich_help_panel="Deploys")
@friendly
def export_bento(bento: Annotated[str, typer.Option(help="the built bento's tag")]) -> None:
    """The release's bento as one file named by its digest, with its holdout, in build/bento."""
    from {{ cookiecutter.package }}.registry.release import load
    from {{ cookiecutter.package }}.serving.bento import export_bento as export

    record = export(bento, load())
    console.print(f"{record['bento']} -> {config.BENTO_DIR / record['file']}", highlight=False)

{%- if cookiecutter.deploy == 'local' %}


@app.command("release-canary", rich_help_panel="Deploys")
@friendly
def release_canary(
    live: Annotated[bool, typer.Option("--live", help="replay nothing: live traffic only")] = False,
) -> None:
    """Serving host: roll the bento in build/bento out against the stable side; exit 1 if not."""
    from {{ cookiecutter.package }}.rollout.host import Host
    from {{ cookiecutter.package }}.rollout.traffic import read_records

    replay = None if live else read_records(config.BENTO_REPLAY)
    host = Host.of(config.load_settings().canary)
    rollout = host.release(replay, lambda line: console.print(line, highlight=False, markup=False))
    console.print(f"{rollout.verdict.upper()}: {rollout.reason}", highlight=False, markup=False)
    if rollout.verdict != "promoted":
        raise typer.Exit(1)


@app.command("release-rollback", rich_help_panel="Deploys")
@friendly
def release_rollback() -> None:
    """Serving host: every request to the stable side, the canary stopped (any time, idempotent)."""
    from {{ cookiecutter.package }}.rollout.host import Host

    console.print(Host.of(config.load_settings().canary).rollback(), highlight=False)


@app.command("serving-up", rich_help_panel="Deploys")
@friendly
def serving_up() -> None:
    """Serving host: start the front and the stable server where they are not running."""
    from {{ cookiecutter.package }}.rollout.host import Host

    front, stable = Host.of(config.load_settings().canary).up()
    console.print(f"front {front.url} -> {stable.url if stable else 'no release yet'}")
{%- endif %}
{%- if cookiecutter.deploy == 'kubernetes' %}


# --- Kubernetes canary (deploy/k8s, Argo Rollouts) ---------------------------------------------


@app.command("render-k8s", rich_help_panel="Deploys")
@friendly
def render_k8s(
    check: Annotated[
        bool, typer.Option(help="write nothing; exit 1 when deploy/k8s differs from params.yaml")
    ] = False,
) -> None:
    """Render deploy/k8s rollout.yaml and analysis-template.yaml from params.yaml canary/k8s."""
    from {{ cookiecutter.package }}.rollout import k8s

    for path in k8s.write(config.load_settings(), check):
        console.print(f"wrote {path}", highlight=False)
    if check:
        console.print(f"{config.K8S_DIR} matches params.yaml", highlight=False)


@app.command("k8s-release", rich_help_panel="Deploys")
@friendly
def k8s_release(
    image: Annotated[str, typer.Option(help="pushed image, registry/name@sha256:<digest>")],
) -> None:
    """Write build/k8s-release/kustomization.yaml: deploy/k8s with IMAGE, for `kubectl apply -k`."""
    from {{ cookiecutter.package }}.rollout import k8s

    k8s.check(config.load_settings())  # a bad setting stops here, before the cluster
    console.print(f"wrote {k8s.write_release(image)} ({image})", highlight=False)


@app.command("k8s-timeout", rich_help_panel="Deploys")
@friendly
def k8s_timeout() -> None:
    """Print params.yaml k8s.rollout_timeout_seconds as `kubectl argo rollouts status` reads it."""
    from {{ cookiecutter.package }}.rollout import k8s

    settings = k8s.check(config.load_settings())
    print(f"{settings.k8s.rollout_timeout_seconds}s")
{%- endif %}
