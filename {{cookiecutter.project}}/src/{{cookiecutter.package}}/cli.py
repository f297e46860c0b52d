"""One command line for DVC stages, the Makefile, workflows and people.

`{{ cookiecutter.package }} --help` lists the commands. Errors a user can fix are printed as one
`ERROR:` line with the fix, never as a stack trace.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

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

    return wrapper


@app.command("check-params")
@friendly
def check_params() -> None:
    """Validate params.yaml (`make repro` runs this before any stage writes anything)."""
    settings = config.load_settings()
    console.print(f"{config.PARAMS_FILE} is valid (model family: {settings.train.model})")


@app.command()
@friendly
def ingest() -> None:
    """Write the raw dataset named by data.source in params.yaml to data.raw."""
    from {{ cookiecutter.package }}.data import ingest as run_ingest

    raw = run_ingest(config.load_settings().data)
    console.print(f"wrote {raw}; track it with `dvc add {raw}`")


@app.command()
@friendly
def prepare() -> None:
    """DVC stage: anonymise the raw data (hash or drop PII columns)."""
    from {{ cookiecutter.package }}.pipeline.prepare import run

    frame = run(config.load_settings().data, config.ANONYMISED)
    console.print(f"prepared {len(frame)} rows -> {config.ANONYMISED}")


@app.command()
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
        console.print(
            f"[bold red]ERROR:[/] data breaks the contract in schema.py "
            f"({len(result.problems)} problem(s)); training will not run. "
            f"Report: {config.VALIDATION_REPORT.with_suffix('.md')}",
            highlight=False,
        )
        for problem in result.problems:
            console.print(f"  - {problem.sentence()}", highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"contract holds for {result.rows} rows")


@app.command()
@friendly
def train() -> None:
    """DVC stage: fit the model family chosen in params.yaml."""
    from {{ cookiecutter.package }}.pipeline.train import run

    run(config.load_settings(), config.TRAIN_SPLIT, config.MODEL_DIR, config.TRAINING_INFO)
    console.print(f"model saved to {config.MODEL_DIR}")


@app.command()
@friendly
def evaluate() -> None:
    """DVC stage: holdout metrics (metrics.json) and plots."""
    from {{ cookiecutter.package }}.pipeline.evaluate import run

    settings = config.load_settings()
    values = run(
        settings, config.MODEL_DIR, config.TEST_SPLIT, config.METRICS_FILE, config.PLOTS_DIR
    )
    console.print(" ".join(f"{name}={value:.4f}" for name, value in values.items()))


@app.command()
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


@app.command("infer-schema")
@friendly
def infer_schema(
    source: Annotated[Path, typer.Argument(help="your .csv or .parquet file")],
    output: Annotated[Path, typer.Option(help="where to write the draft schema")] = Path(
        "schema_draft.yaml"
    ),
) -> None:
    """Draft a pandera schema (YAML) from your own data, to adapt into schema.py."""
    import pandera.pandas as pa

    from {{ cookiecutter.package }}.data import read_table

    if output.exists():
        raise UserError(f"{output} exists; pass --output with a new path (nothing overwritten)")
    frame = read_table(source)
    output.write_text(pa.infer_schema(frame).to_yaml())
    console.print(f"draft schema for {len(frame.columns)} columns -> {output}")


@app.command()
@friendly
def explain() -> None:
    """DVC stage: permutation importance of each input column on the holdout."""
    from {{ cookiecutter.package }}.pipeline.explain import run

    record = run(config.load_settings(), config.MODEL_DIR, config.TEST_SPLIT, config.IMPORTANCE)
    top = next(iter(record["features"]), "-")
    console.print(
        f"importance of {len(record['features'])} columns -> {config.IMPORTANCE}; top {top}"
    )


@app.command()
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


@app.command()
@friendly
def gate(
    base: Annotated[str, typer.Option(help="git ref to compare with, e.g. origin/main")] = "main",
) -> None:
    """Quality check: exit 1 when the primary metric regresses vs --base beyond params.yaml."""
    import json

    from {{ cookiecutter.package }}.lifecycle.gate import baseline, check

    settings = config.load_settings()
    if not config.METRICS_FILE.exists():
        raise UserError(f"{config.METRICS_FILE} not found: run `make repro` first")
    metrics = json.loads(config.METRICS_FILE.read_text())
    verdict = check(settings, metrics, *baseline(settings, base))
    if not verdict.passed:
        raise UserError(f"quality gate failed: {verdict.reason}")
    console.print(f"quality gate {verdict.line()} (vs {base})", highlight=False)


ModelDir = Annotated[Path | None, typer.Option(help="a saved model directory, e.g. models/model")]
ModelVersion = Annotated[str | None, typer.Option(help="a registered MLflow model version")]
Alias = Annotated[
    str | None, typer.Option(help="an MLflow alias (default: champion, else challenger)")
]


@app.command()
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


@app.command("prepare-bento")
@friendly
def prepare_bento(
    model_dir: ModelDir = None, model_version: ModelVersion = None, alias: Alias = None
) -> None:
    """Put the chosen model into BentoML's model store for `bentoml build` (`make build`)."""
    from {{ cookiecutter.package }}.serving.bento import BUILD_BENTOFILE, prepare
    from {{ cookiecutter.package }}.serving.choice import choose

    tag, info = prepare(choose(model_dir, model_version, alias))
    console.print(
        f"BentoML model {tag} <- {info.name} v{info.version} ({info.source}"
        f"{', alias ' + info.alias if info.alias else ''}); bentofile -> {BUILD_BENTOFILE}",
        highlight=False,
    )
{%- if cookiecutter.deploy == 'kubernetes' %}


# --- Kubernetes canary (deploy/k8s, Argo Rollouts) ---------------------------------------------


@app.command("render-k8s")
@friendly
def render_k8s(
    check: Annotated[
        bool, typer.Option(help="write nothing; exit 1 when deploy/k8s differs from params.yaml")
    ] = False,
) -> None:
    """Render deploy/k8s rollout.yaml and analysis-template.yaml from params.yaml canary/k8s."""
    from {{ cookiecutter.package }}.rollout import k8s

    if check:
        stale = k8s.stale(config.load_settings())
        if stale:
            raise UserError(
                f"{', '.join(stale)} in {k8s.DEPLOY_DIR} differ from params.yaml: "
                "run `make k8s-manifests` and commit the result"
            )
        console.print(f"{k8s.DEPLOY_DIR} matches params.yaml", highlight=False)
        return
    for path in k8s.write(config.load_settings()):
        console.print(f"wrote {path}", highlight=False)


@app.command("k8s-release")
@friendly
def k8s_release(
    image: Annotated[str, typer.Option(help="pushed image, registry/name@sha256:<digest>")],
) -> None:
    """Write build/k8s-release/kustomization.yaml: deploy/k8s with IMAGE, for `kubectl apply -k`."""
    from {{ cookiecutter.package }}.rollout import k8s

    k8s.check(config.load_settings())  # a bad setting stops here, before the cluster
    console.print(f"wrote {k8s.write_release(image)} ({image})", highlight=False)


@app.command("k8s-timeout")
@friendly
def k8s_timeout() -> None:
    """Print params.yaml k8s.rollout_timeout_seconds as `kubectl argo rollouts status` reads it."""
    from {{ cookiecutter.package }}.rollout import k8s

    settings = k8s.check(config.load_settings())
    print(f"{settings.k8s.rollout_timeout_seconds}s")
{%- endif %}


@app.command()
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
    import json

    from {{ cookiecutter.package }}.registry import champion

    settings = config.load_settings()
    if not config.REGISTRY_RECORD.exists():
        raise UserError(f"{config.REGISTRY_RECORD} not found: run `make repro` to register one")
    version = json.loads(config.REGISTRY_RECORD.read_text())["version"]
    result = champion.challenge(settings, config.MODEL_DIR, config.TEST_SPLIT, version)
    decision = result.decision
    console.print(f"{result.basis}; {decision.reason}", highlight=False, markup=False)
    if decision.promote and not decide_only:
        record = champion.promote(
            settings, version, approved_by=approved_by, evidence=result.to_dict()
        )
        console.print(
            f"promoted {settings.registry.model_name} v{version} to champion "
            f"(git tag {record.get('git_tag') or '-'}) -> {champion.PROMOTION_RECORD}",
            highlight=False,
        )
        return
    verdict = "would be promoted (--decide-only)" if decision.promote else "stays challenger"
    champion.keep(f"v{version} {verdict}: {decision.reason}", result.to_dict())
    console.print(f"v{version} {verdict} -> {champion.PROMOTION_RECORD}", highlight=False)


@app.command("retrain-report")
@friendly
def retrain_report() -> None:
    """The retraining pull request's body (decision, metrics vs champion, drift)."""
    import json
    import os

    from {{ cookiecutter.package }}.lifecycle.retrain import write
    from {{ cookiecutter.package }}.registry import champion

    path = write(config.load_settings())
    console.print(f"pull request body -> {path}", highlight=False)
    # In GitHub Actions: the body as the run's summary, and whether a pull request should open.
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(summary, "a") as handle:
            handle.write(path.read_text())
    if output := os.environ.get("GITHUB_OUTPUT"):
        wins = json.loads(champion.PROMOTION_RECORD.read_text())["evidence"]["decision"]["promote"]
        with open(output, "a") as handle:
            handle.write(f"wins={str(wins).lower()}\n")


# --- drift ---------------------------------------------------------------------------------
DRIFT_EXIT = 3  # `drift` exits 0 without drift, 3 with drift, 1 on an error


@app.command()
@friendly
def drift(
    reference: Annotated[
        Path, typer.Option(help="the sample the model learnt from: .csv/.parquet")
    ],
    current: Annotated[Path, typer.Option(help="the sample to compare with it: .csv/.parquet")],
    output: Annotated[
        Path, typer.Option(help="drift.json; the markdown section goes next to it as .md")
    ] = Path("reports/drift.json"),
    scores: Annotated[
        bool, typer.Option(help="also compare the chosen model's scores of both samples")
    ] = False,
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
) -> None:
    """Per-column drift of CURRENT against REFERENCE (params.yaml drift). Exit code: 0 no drift,
    3 drift, 1 error."""
    from {{ cookiecutter.package }}.contract.records import contract_kinds
    from {{ cookiecutter.package }}.contract.schema import inputs
    from {{ cookiecutter.package }}.data import read_table
    from {{ cookiecutter.package }}.monitoring.drift import drift as compare
    from {{ cookiecutter.package }}.monitoring.drift import write_report

    settings = config.load_settings()
    kinds = contract_kinds()
    samples = read_table(reference), read_table(current)
    model_scores = None
    if scores:
        from {{ cookiecutter.package }}.serving.choice import choose, load

        model, _ = load(choose(model_dir, model_version, alias))
        model_scores = tuple(model.predict_proba(inputs(s))[:, 1] for s in samples)
    report = compare(*samples, kinds, settings.drift, scores=model_scores)
    write_report(report, output, output.with_suffix(".md"))
    drifted = ", ".join(report.drifted_columns) or "none"
    console.print(
        f"drift in {len(report.drifted_columns)} of {len(report.results)} columns ({drifted}) "
        f"-> {output}, {output.with_suffix('.md')}",
        highlight=False,
        markup=False,
    )
    if report.drifted:
        raise typer.Exit(DRIFT_EXIT)


@app.command()
@friendly
def monitor(
    repository: Annotated[
        str | None, typer.Option(help="owner/name to dispatch to (default: GITHUB_REPOSITORY)")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="GitHub API base (default: GITHUB_API_URL, else github.com)")
    ] = None,
    reference: Annotated[
        Path, typer.Option(help="training reference: the validated split")
    ] = config.TRAIN_SPLIT,
    output: Annotated[Path, typer.Option(help="the run's record")] = Path("reports/monitor.json"),
    textfile: Annotated[
        Path, typer.Option(help="gauges for Prometheus' textfile collector")
    ] = Path("reports/monitor.prom"),
    model_dir: ModelDir = None,
    model_version: ModelVersion = None,
    alias: Alias = None,
) -> None:
    """Compare recent prediction samples with the training data; on drift ask GitHub to retrain.

    Exit 0: no drift (or too few samples); 3: drift; 1: a problem to fix. Without GITHUB_TOKEN
    the dispatch request is printed, not sent.
    """
    import os

    from {{ cookiecutter.package }}.data import read_table
    from {{ cookiecutter.package }}.monitoring import monitor as watch
    from {{ cookiecutter.package }}.serving.choice import choose, load

    settings = config.load_settings()
    token = os.environ.get(watch.TOKEN_ENV) or None
    watch.target(repository, api_url, token)  # a bad repository fails before any work
    if not reference.exists():
        raise UserError(f"{reference} not found: run `make repro` (or pass --reference)")
    frame = read_table(reference)
    model, info = load(choose(model_dir, model_version, alias))
    scores = model.predict_proba(frame[list(watch.contract_kinds())])[:, 1]
    outcome = watch.monitor(
        settings.monitoring,
        settings.drift,
        frame,
        scores,
        repository=repository,
        api_url=api_url,
        token=token,
        report_path=output,
        textfile=textfile,
        reference_name=f"{reference} scored by {info.name} v{info.version}",
    )
    window = outcome.record["window"]
    console.print(
        f"{outcome.status.replace('_', ' ')}: {window['samples']} samples over the last "
        f"{window['hours']:g} h in {settings.monitoring.sink} vs {len(frame)} reference rows "
        f"-> {output}",
        highlight=False,
    )
    if outcome.dispatch is not None and outcome.sent:
        console.print(
            f"sent {settings.monitoring.event_type} to {outcome.dispatch.url}", highlight=False
        )
    elif outcome.dispatch is not None:
        console.print(
            f"{watch.TOKEN_ENV} is not set: the request that would start retraining is:",
            highlight=False,
        )
        print(outcome.dispatch.describe())
    raise typer.Exit(outcome.exit_code)


@app.command("monitoring-rules")
@friendly
def monitoring_rules(
    check: Annotated[
        bool, typer.Option(help="only check that the committed files equal the rendering")
    ] = False,
) -> None:
    """Render deploy/monitoring/alerts.yml (and its promtool tests) from params.yaml."""
    from {{ cookiecutter.package }}.monitoring import alerts

    settings = config.load_settings().monitoring
    rendered = {
        Path(alerts.RULES_FILE): alerts.render_rules(settings),
        Path(alerts.TESTS_FILE): alerts.render_tests(settings),
    }
    stale = [
        str(path)
        for path, text in rendered.items()
        if not path.exists() or path.read_text() != text
    ]
    if check:
        if stale:
            raise UserError(
                f"{', '.join(stale)} differ from params.yaml: run `make monitoring-rules`"
            )
        console.print("alert rules match params.yaml")
        return
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    console.print(f"wrote {', '.join(str(path) for path in rendered)} from params.yaml monitoring")


@app.command()
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
    from {{ cookiecutter.package }}.rollout.canary import plan
    from {{ cookiecutter.package }}.rollout.loop import REPORT, SUMMARY, write_reports

    settings = config.load_settings()
    overrides: dict[str, Any] = {}
    if steps:
        overrides["steps"] = [int(step) for step in steps.split(",")]
    if interval is not None:
        overrides["interval_seconds"] = interval
    rollout_plan = plan(
        settings,
        version,
        stable_url,
        canary_url,
        None if live else replay,
        overrides,
    )
    console.print(rollout_plan.headline, highlight=False)
    rollout, traffic = rollout_plan.run(approved_by, keep_running, console.print)
    write_reports(rollout)
    sent = f"; replayed {traffic['sent']} requests, {traffic['failed']} failed" if traffic else ""
    console.print(f"{rollout.verdict.upper()}: {rollout.reason}{sent}", highlight=False)
    console.print(f"analysis -> {REPORT}, {SUMMARY}", highlight=False)
    if rollout.verdict != "promoted":
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
