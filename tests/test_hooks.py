"""The hooks: bad answers are rejected with one clear line and nothing on disk."""

from __future__ import annotations

import json
import subprocess
import tomllib
import types
from pathlib import Path

import pytest
from bakery import CHOICE_OPTIONS, COOKIECUTTER_JSON, ROOT, bake, tool_env
from cookiecutter.environment import StrictEnvironment

INVALID_ANSWERS = [
    ({"project": "Churn_Model"}, "ERROR: project 'Churn_Model'", "churn-model"),
    ({"project": "-churn"}, "ERROR: project '-churn'", "churn-model"),
    ({"project": "churn model"}, "ERROR: project 'churn model'", "churn-model"),
    ({"package": "1churn"}, "ERROR: package '1churn'", "churn_model"),
    ({"package": "class"}, "ERROR: package 'class'", "churn_model"),
    ({"retrain_schedule": "0 6 * *"}, "has 4 fields", "0 6 * * 1"),
    ({"retrain_schedule": "61 6 * * 1"}, "invalid minute field '61'", "0 6 * * 1"),
    ({"retrain_schedule": "0 6 * 13 1"}, "invalid month field '13'", "0 6 * * 1"),
    ({"retrain_schedule": "0 6 * * mon"}, "invalid day of week field 'mon'", "0 6 * * 1"),
    ({"retrain_schedule": "*/0 6 * * 1"}, "invalid minute field '*/0'", "0 6 * * 1"),
    ({"retrain_schedule": "* * * * *"}, "runs 1 minute(s) apart", "0 6 * * 1"),
    ({"retrain_schedule": "*/4 6 * * 1"}, "runs 4 minute(s) apart", "0 6 * * 1"),
    ({"retrain_schedule": "0,58 * * * *"}, "runs 2 minute(s) apart", "0 6 * * 1"),
]


def cookiecutter_cli(output: Path, answers: dict[str, str]) -> subprocess.CompletedProcess:
    extra = [f"{key}={value}" for key, value in answers.items()]
    return subprocess.run(
        ["cookiecutter", "--no-input", "--output-dir", str(output), str(ROOT), *extra],
        capture_output=True,
        text=True,
        env=tool_env(),
    )


@pytest.mark.parametrize(
    ("answers", "message", "example"), INVALID_ANSWERS, ids=[str(a) for a, _, _ in INVALID_ANSWERS]
)
def test_invalid_answer_is_rejected_and_leaves_nothing(
    tmp_path: Path, answers: dict, message: str, example: str
) -> None:
    result = cookiecutter_cli(tmp_path, answers)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1, result.stderr
    assert message in error_lines[0] and example in error_lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", sorted(CHOICE_OPTIONS))
def test_unknown_choice_is_rejected_by_cookiecutter_before_anything_is_written(
    tmp_path: Path, option: str
) -> None:
    """cookiecutter checks choices itself (its message names the option and the choices)."""
    result = cookiecutter_cli(tmp_path, {option: "no-such-choice"})
    assert result.returncode != 0
    assert f"no-such-choice provided for choice variable {option}" in result.stderr
    assert all(choice in result.stderr for choice in CHOICE_OPTIONS[option])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", sorted(CHOICE_OPTIONS))
def test_pre_gen_also_rejects_unknown_choices_from_replay_files(option: str) -> None:
    """Replay files skip cookiecutter's own check; the hook names the option and an example."""
    hook = render_hook("pre_gen_project.py")
    (message,) = hook.errors(dict(hook.ANSWERS, **{option: "no-such-choice"}))
    assert message.startswith(f"ERROR: {option} 'no-such-choice'")
    assert f"example: {option}={CHOICE_OPTIONS[option][0]}" in message


def render_hook(name: str, **answers: str) -> types.ModuleType:
    """Render a hook with cookiecutter's Jinja environment and import it as a module."""
    context = {key: value for key, value in COOKIECUTTER_JSON.items() if not key.startswith("_")}
    context = {
        key: (value[0] if isinstance(value, list) else value) for key, value in context.items()
    }
    context.update(answers)
    env = StrictEnvironment(context={"cookiecutter": context})
    context["package"] = env.from_string(context["package"]).render(cookiecutter=context)
    source = env.from_string((ROOT / "hooks" / name).read_text()).render(cookiecutter=context)
    module = types.ModuleType(name.removesuffix(".py"))
    exec(compile(source, name, "exec"), module.__dict__)
    return module


def test_pre_gen_accepts_defaults_and_hostile_but_valid_text() -> None:
    hook = render_hook(
        "pre_gen_project.py", description='He said "hi" \\ it\'s\nfine', author="O'Brien <x@y>"
    )
    assert hook.ANSWERS["description"] == 'He said "hi" \\ it\'s\nfine'
    assert hook.errors(hook.ANSWERS) == []


@pytest.mark.parametrize(
    "cron",
    [
        "0 6 * * 1",
        "*/15 * * * *",
        "0 0 1,15 * *",
        "30 2 * 1-6 0-5/2",
        "*/5 * * * *",
        "3,58 * * * *",
    ],
)
def test_valid_cron_schedules_pass(cron: str) -> None:
    hook = render_hook("pre_gen_project.py")
    assert hook.check_cron(cron) is None


def test_all_problems_are_reported_at_once() -> None:
    hook = render_hook("pre_gen_project.py")
    answers = dict(hook.ANSWERS, project="Bad", model="xgb")
    assert len(hook.errors(answers)) == 2


def test_post_gen_table_removes_only_unchosen_option_files() -> None:
    hook = render_hook("post_gen_project.py")
    sklearn = hook.paths_to_remove(dict(hook.ANSWERS, model="sklearn"))
    torch = hook.paths_to_remove(dict(hook.ANSWERS, model="torch"))
    assert "src/churn_model/modeling/torch_model.py" in sklearn
    assert "src/churn_model/modeling/torch_model.py" not in torch
    cloud = hook.paths_to_remove(dict(hook.ANSWERS, gpu_runner="cloud-gcp"))
    assert "gpu-runner.mk" in sklearn and "gpu-runner.mk" not in cloud


def test_every_path_the_post_gen_hook_prunes_exists_in_the_template() -> None:
    """A table entry for a file that is not there prunes nothing and hides a typo."""
    hook = render_hook("post_gen_project.py")
    template = ROOT / "{{cookiecutter.project}}"
    for paths in hook.ONLY_WHEN.values():
        for path in paths:
            assert (template / path.format(package="{{cookiecutter.package}}")).exists(), path


def test_hostile_description_bakes_into_valid_files(tmp_path: Path) -> None:
    description = 'Churn "quoted" \\ back\'slash'
    project = bake(tmp_path, description=description, author="O'Brien")
    answers = json.loads((project / ".cookiecutter.json").read_text())
    assert answers["description"] == description
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == description
