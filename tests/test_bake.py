"""Structure of every baked combination: exact file sets, rendered text, parseable, ruff clean."""

from __future__ import annotations

import ast
import configparser
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from bakery import files_under, tool_env
from conftest import bake_ids

ALWAYS = {
    ".cookiecutter.json",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvcignore",
    ".github/actions/setup/action.yml",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".github/workflows/deploy.yml",
    ".github/workflows/retrain.yml",
    ".github/workflows/train.yml",
    ".gitignore",
    "Makefile",
    "ci.mk",
    "bentofile.yaml",
    "README.md",
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/cli/__init__.py",
    "src/{package}/cli/app.py",
    "src/{package}/cli/deploys.py",
    "src/{package}/cli/monitoring.py",
    "src/{package}/cli/pipeline.py",
    "src/{package}/cli/pull_requests.py",
    "src/{package}/cli/serving.py",
    "src/{package}/cli/training.py",
    "src/{package}/config/__init__.py",
    "src/{package}/config/params.py",
    "src/{package}/config/paths.py",
    "src/{package}/config/settings.py",
    "src/{package}/contract/__init__.py",
    "src/{package}/contract/records.py",
    "src/{package}/contract/render.py",
    "src/{package}/contract/schema.py",
    "src/{package}/contract/validation.py",
    "src/{package}/data.py",
    "src/{package}/lifecycle/__init__.py",
    "src/{package}/lifecycle/adopt.py",
    "src/{package}/lifecycle/feature_reset.py",
    "src/{package}/lifecycle/gate.py",
    "src/{package}/lifecycle/owned.py",
    "src/{package}/lifecycle/report.py",
    "src/{package}/lifecycle/retrain.py",
    "src/{package}/modeling/__init__.py",
    "src/{package}/modeling/engineered.py",
    "src/{package}/modeling/fast.py",
    "src/{package}/modeling/features.py",
    "src/{package}/modeling/meta.py",
    "src/{package}/modeling/metrics.py",
    "src/{package}/modeling/model.py",
    "src/{package}/modeling/plots.py",
    "src/{package}/modeling/trees.py",
    "src/{package}/monitoring/__init__.py",
    "src/{package}/monitoring/alerts.py",
    "src/{package}/monitoring/compare.py",
    "src/{package}/monitoring/dispatch.py",
    "src/{package}/monitoring/drift.py",
    "src/{package}/monitoring/feedback.py",
    "src/{package}/monitoring/monitor.py",
    "src/{package}/monitoring/stats.py",
    "src/{package}/monitoring/quality.py",
    "src/{package}/monitoring/rendered.py",
    "src/{package}/monitoring/schedule.py",
    "src/{package}/monitoring/shift.py",
    "src/{package}/pipeline/__init__.py",
    "src/{package}/pipeline/evaluate.py",
    "src/{package}/pipeline/explain.py",
    "src/{package}/pipeline/prepare.py",
    "src/{package}/pipeline/register.py",
    "src/{package}/pipeline/train.py",
    "src/{package}/pipeline/validate.py",
    "src/{package}/registry/__init__.py",
    "src/{package}/registry/champion.py",
    "src/{package}/registry/history.py",
    "src/{package}/registry/promotion.py",
    "src/{package}/registry/release.py",
    "src/{package}/registry/tracking.py",
    "src/{package}/rollout/__init__.py",
    "src/{package}/rollout/analysis.py",
    "src/{package}/rollout/caddy.py",
    "src/{package}/rollout/canary.py",
    "src/{package}/rollout/loop.py",
    "src/{package}/rollout/servers.py",
    "src/{package}/rollout/steps.py",
    "src/{package}/rollout/traffic.py",
    "src/{package}/serving/__init__.py",
    "src/{package}/serving/batch.py",
    "src/{package}/serving/bento.py",
    "src/{package}/serving/choice.py",
    "src/{package}/serving/ids.py",
    "src/{package}/serving/sampling.py",
    "src/{package}/serving/service.py",
    "tests/bad_records.py",
    "tests/conftest.py",
    "tests/contract_data.py",
    "tests/faulty_service.py",
    "tests/strategies.py",
    "tests/test_adopt.py",
    "tests/test_architecture.py",
    "tests/test_batch.py",
    "tests/test_batcher.py",
    "tests/test_canary.py",
    "tests/test_canary_analysis.py",
    "tests/test_cli.py",
    "tests/test_data.py",
    "tests/test_drift.py",
    "tests/test_fast_path.py",
    "tests/test_model.py",
    "tests/test_paths.py",
    "tests/test_promotion.py",
    "tests/test_registry.py",
    "tests/test_release.py",
    "tests/test_properties.py",
    "tests/test_records.py",
    "tests/test_report.py",
    "tests/test_schema.py",
    "tests/test_service.py",
    "tests/test_trees.py",
    # monitoring (issue 11): sampler, monitor, alert rules and dashboard
    "deploy/monitoring/alerts.test.yml",
    "deploy/monitoring/alerts.yml",
    "deploy/monitoring/dashboard.json",
    "deploy/monitoring/prometheus.yml",
    "tests/test_alerts.py",
    "tests/test_monitor.py",
    "tests/test_sampling.py",
    # the monitoring loop (issue 20): request ids, labels, quality, the monitor's schedule
    "tests/fake_github.py",
    "tests/test_feedback.py",
    "tests/test_feedback_loop.py",
    "tests/test_quality.py",
    "tests/test_schedule.py",
    # serving that runs for months (issue 22): the sink's layout and retention, its faults
    "src/{package}/serving/sink.py",
    "tests/faulty_sink.py",
    "tests/test_retention.py",
    "tests/test_sink_faults.py",
}
# (option, values) -> files that exist exactly when the option has one of those values.
ONLY_WHEN = {
    ("model", ("torch",)): {
        "src/{package}/modeling/torch_model.py",
        "src/{package}/modeling/torch_loop.py",
        "src/{package}/modeling/torch_steps.py",
        "tests/test_torch_capture.py",
        "tests/test_torch_model.py",
    },
    ("gpu_runner", ("cloud-aws", "cloud-gcp", "cloud-azure")): {"gpu-runner.mk"},
    ("deploy", ("kubernetes",)): {
        "deploy/k8s/analysis-template.yaml",
        "deploy/k8s/deployment.yaml",
        "deploy/k8s/hpa.yaml",
        "deploy/k8s/kustomization.yaml",
        "deploy/k8s/monitor-cronjob.yaml",
        "deploy/k8s/monitoring-config.yaml",
        "deploy/k8s/README.md",
        "deploy/k8s/rollout.yaml",
        "deploy/k8s/service.yaml",
        "src/{package}/rollout/k8s.py",
        "tests/test_k8s_manifests.py",
    },
    ("deploy", ("local",)): {
        "deploy/local/README.md",
        "deploy/local/monitor.service",
        "deploy/local/monitor.timer",
        "deploy/local/serving.env",
        "deploy/local/serving.service",
        "src/{package}/rollout/host.py",
    },
}
# Files that exist exactly when every (option, values) pair holds.
ONLY_WHEN_ALL = {
    (("deploy", ("kubernetes",)), ("dvc_remote", ("local",))): {
        "deploy/k8s/monitoring-volume.yaml"
    },
}
# `${{` is GitHub's, `{{args.` Argo Rollouts' (deploy/k8s/analysis-template.yaml).
UNRENDERED = re.compile(r"(?<!\$)\{\{(?!args\.)|\{%|%\}")


def expected_files(answers: dict[str, str], package: str) -> set[str]:
    names = set(ALWAYS)
    for (option, values), paths in ONLY_WHEN.items():
        if answers.get(option, _default(option)) in values:
            names |= paths
    for conditions, paths in ONLY_WHEN_ALL.items():
        if all(answers.get(option, _default(option)) in values for option, values in conditions):
            names |= paths
    return {name.format(package=package) for name in names}


def _default(option: str) -> str:
    from bakery import defaults

    return defaults()[option]


def package_of(project: Path) -> str:
    return json.loads((project / ".cookiecutter.json").read_text())["package"]


@pytest.fixture(params=bake_ids())
def baked(request: pytest.FixtureRequest, bakes) -> tuple[dict[str, str], Path]:
    return bakes[request.param]


def test_exact_file_set(baked) -> None:
    answers, project = baked
    assert files_under(project) == expected_files(answers, package_of(project))
    assert (project / ".git").is_dir(), "post-gen hook starts a git repository"


def test_nothing_left_unrendered(baked) -> None:
    _, project = baked
    leftovers = {
        name: match.group(0)
        for name in files_under(project)
        if (match := UNRENDERED.search((project / name).read_text()))
    }
    assert leftovers == {}


def test_every_python_toml_yaml_json_file_parses(baked) -> None:
    _, project = baked
    for name in files_under(project):
        text = (project / name).read_text()
        if name.endswith(".py"):
            ast.parse(text, filename=name)
        elif name.endswith(".toml"):
            tomllib.loads(text)
        elif name.endswith((".yml", ".yaml")):
            list(yaml.safe_load_all(text))
        elif name.endswith(".json"):
            json.loads(text)
    configparser.ConfigParser().read_string((project / ".dvc" / "config").read_text())


def test_ruff_clean(baked) -> None:
    _, project = baked
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = subprocess.run(
            command, cwd=project, capture_output=True, text=True, env=tool_env()
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_options_reach_the_files_that_use_them(baked) -> None:
    answers, project = baked
    params = yaml.safe_load((project / "params.yaml").read_text())
    recorded = json.loads((project / ".cookiecutter.json").read_text())
    for option, value in answers.items():
        assert recorded[option] == value
    # The answers travel with the repository; the baking machine's paths do not.
    assert not {"_output_dir", "_repo_dir"} & recorded.keys()
    assert str(project.parent) not in (project / ".cookiecutter.json").read_text()
    assert params["train"]["model"] == recorded["model"]
    remote = (project / ".dvc" / "config").read_text()
    scheme = {"local": "../../", "s3": "s3://", "gcs": "gs://", "azure": "azure://"}
    assert f"url = {scheme[recorded['dvc_remote']]}" in remote
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    dvc = next(dep for dep in dependencies if dep.startswith("dvc"))
    extra = {"gcs": "gs"}.get(recorded["dvc_remote"], recorded["dvc_remote"])  # DVC's extra names
    assert (f"dvc[{extra}]" in dvc) == (recorded["dvc_remote"] != "local")
    tracking = "sqlite:///mlflow.db" if recorded["mlflow_tracking"] == "local" else "127.0.0.1:5000"
    assert tracking in params["registry"]["tracking_uri"]
    assert ("torch" in params["train"]) == (recorded["model"] == "torch")
    assert ("mlflow-server:" in (project / "Makefile").read_text()) == (
        recorded["mlflow_tracking"] == "server"
    )
    pyproject = (project / "pyproject.toml").read_text()
    assert ('"torch>=' in pyproject) == (recorded["model"] == "torch")


def file_texts(project: Path) -> dict[str, str]:
    """The baked text files (tools the tests run leave caches behind: not part of the bake)."""
    names = files_under(project, skip=(".git", ".ruff_cache", "__pycache__"))
    return {name: (project / name).read_text() for name in names}


def variants() -> list[tuple[str, str]]:
    """Every (option, value) other than the default, and a second cron for the text option."""
    from bakery import CHOICE_OPTIONS, COOKIECUTTER_JSON

    found = [(option, value) for option, values in CHOICE_OPTIONS.items() for value in values[1:]]
    text = [key for key, value in COOKIECUTTER_JSON.items() if key == "retrain_schedule"]
    return found + [(key, "30 2 * * *") for key in text]


@pytest.mark.parametrize(("option", "value"), variants(), ids=lambda item: str(item))
def test_each_option_value_changes_the_baked_tree(tmp_path: Path, option: str, value: str) -> None:
    """An option value that bakes the same files as the default would promise nothing."""
    from bakery import bake

    default = file_texts(bake(tmp_path / "default", project="same"))
    chosen = file_texts(bake(tmp_path / "chosen", project="same", **{option: value}))
    changed = {name for name in default.keys() | chosen.keys() if name != ".cookiecutter.json"}
    changed = {name for name in changed if default.get(name) != chosen.get(name)}
    assert changed, f"{option}={value} bakes the same files as the default"


# Phrases that only make sense to the template's maintainers, never in a user's repository.
MAINTAINER_NOTES = re.compile(
    r"template's (own )?tests?|--no-deps|JSON escapes|zizmor prefers|the template repository|"
    r"docs/benchmarks\.md|docs of the template",
    re.IGNORECASE,
)
DOC_LINK = re.compile(r"\bdocs/[\w./-]+\.md\b")


def test_generated_files_speak_to_their_own_users(baked) -> None:
    _, project = baked
    for name, text in file_texts(project).items():
        note = MAINTAINER_NOTES.search(text)
        assert note is None, f"{name} speaks to the template's maintainers: {note.group(0)!r}"
        for link in DOC_LINK.findall(text):
            assert (project / link).exists(), f"{name} links to {link}, which this repo lacks"


def test_the_project_name_is_never_hard_coded(tmp_path: Path) -> None:
    """A bake under another name carries no trace of the default one."""
    from bakery import bake

    project = bake(tmp_path, project="fraud-model")
    leftovers = {
        name
        for name, text in file_texts(project).items()
        if "churn-model" in text or "churn_model" in text
    }
    assert leftovers == set()


def make_help(project: Path) -> dict[str, list[str]]:
    """`make help` as {section heading: [target, ...]}; "" holds targets before any heading."""
    result = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=project, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    sections: dict[str, list[str]] = {"": []}
    heading = ""
    for line in result.stdout.splitlines():
        if line and not line.startswith(" "):
            heading = line
            sections[heading] = []
        elif line.strip():
            sections[heading].append(line.split()[0])
    assert "$(" not in result.stdout, "a help text shows an unexpanded make variable"
    return sections


def test_make_help_is_grouped_by_section(baked) -> None:
    """Every documented target sits under a heading; CI plumbing under its own, and nothing a
    person runs day to day is hidden there."""
    _, project = baked
    sections = make_help(project)
    assert sections[""] == ["help"]
    ci = [
        name for heading, names in sections.items() if heading.startswith("CI ") for name in names
    ]
    assert {"require", "required-check", "comment", "retrain-pr", "champion-push"} <= set(ci)
    everyday = {
        "setup",
        "test",
        "repro",
        "serve",
        "build",
        "retrain",
        "promote",
        "monitor",
        "canary",
    }
    assert everyday.isdisjoint(ci)
    listed = [name for names in sections.values() for name in names]
    assert len(listed) == len(set(listed)), "a target is listed twice"
    documented = {
        line.split(":")[0]
        for name in ("Makefile", "ci.mk", "gpu-runner.mk")
        if (project / name).exists()
        for line in (project / name).read_text().splitlines()
        if re.match(r"^[a-zA-Z0-9_-]+:.*## ", line)
    }
    assert set(listed) == documented


SETTING = re.compile(r"^\| (environment|variable|secret) \| `([A-Za-z0-9_-]+)` \|", re.MULTILINE)
ENVIRONMENT_EXPRESSION = re.compile(r"^\s+environment:\s*\$\{\{(.*)\}\}", re.MULTILINE)
WORKFLOW_READS = {
    "environment": re.compile(r"^\s+environment:\s*([A-Za-z0-9_-]+)", re.MULTILINE),
    "variable": re.compile(r"\bvars\.([A-Z0-9_]+)"),
    "secret": re.compile(r"\bsecrets\.([A-Z0-9_]+)"),
}


def test_readme_lists_exactly_the_github_settings_the_workflows_read(baked) -> None:
    """Nothing a user must create is missing from the README, nothing listed is never read."""
    _, project = baked
    sources = [*project.glob(".github/workflows/*.yml"), *project.glob(".github/actions/*/*.yml")]
    text = "\n".join(path.read_text() for path in sources)
    read = {(kind, name) for kind, rule in WORKFLOW_READS.items() for name in rule.findall(text)}
    # An environment chosen by an expression: each name it can take.
    for expression in ENVIRONMENT_EXPRESSION.findall(text):
        chosen = re.findall(r"(?:&&|\|\|)\s*'([A-Za-z0-9_-]+)'", expression)
        read |= {("environment", name) for name in chosen}
    readme = (project / "README.md").read_text()
    listed = set(SETTING.findall(readme))
    assert listed == read
