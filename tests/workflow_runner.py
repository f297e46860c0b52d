"""Run a GitHub Actions workflow's jobs on this machine, in a baked project.

A small stand-in for the GitHub runner, enough for the generated workflows: jobs in `needs`
order, `if:` conditions, `${{ }}` expressions, workflow/job/step `env`, step outcomes and job
outputs. Each `run:` step is executed with bash in the project, like the runner does.

What cannot run here is replaced, never faked silently:

- `uses:` steps map to local equivalents (LOCAL_ACTIONS): checkout and tool installers are
  no-ops (the bake is the checkout, the test venv has the tools), the project's composite
  action runs its own steps, upload/download-artifact copy files through a local store.
  Cloud credential actions are recorded as skipped; an unknown action is an error.
- A `make <target>` step whose recipe calls a GitHub- or cloud-only tool (REMOTE_TOOLS: CML,
  cloud CLIs, nvidia-smi) is not executed: its `make -n` expansion is recorded instead, so a
  test can assert the exact command and arguments it would run.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Tools that only work against GitHub or a cloud account, or on a GPU machine.
REMOTE_TOOLS = re.compile(
    r"@dvcorg/cml|(?:^|[\s(|;&\"'])(?:cml|aws|gcloud|az|nvidia-smi)(?:\s|$)", re.MULTILINE
)
# Actions whose effect the test environment already provides.
NO_OP_ACTIONS = {
    "actions/checkout": "the baked project is the checkout",
    "actions/setup-python": "the test venv provides Python",
    "astral-sh/setup-uv": "the test venv provides uv",
    "hashicorp/setup-terraform": "terraform is only used by `cml runner launch`",
}
# Actions that need a cloud account: recorded, not run.
CLOUD_ACTIONS = {
    "aws-actions/configure-aws-credentials",
    "google-github-actions/auth",
    "azure/login",
}


# --- expressions -----------------------------------------------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[()!<>.,\[\]*])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


class ExpressionError(ValueError):
    """An expression this runner does not understand (so the test cannot silently pass)."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _equal(left: Any, right: Any) -> bool:
    """GitHub's loose equality: strings compare case-insensitively."""
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    return left == right


class Expression:
    """Recursive-descent evaluation of one GitHub Actions expression."""

    def __init__(self, source: str, contexts: dict[str, Any], functions: dict[str, Callable]):
        self.source = source
        self.tokens = self._tokenize(source)
        self.position = 0
        self.contexts = contexts
        self.functions = functions

    @staticmethod
    def _tokenize(source: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(source):
            match = TOKEN.match(source, position)
            if not match or match.end() == position:
                if source[position:].strip() == "":
                    break
                raise ExpressionError(f"cannot parse {source!r} at {source[position:]!r}")
            kind = match.lastgroup
            tokens.append((kind, match.group(kind)))
            position = match.end()
        return tokens

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ExpressionError(f"unexpected end of {self.source!r}")
        token = self.tokens[self.position]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"expected {expected!r} in {self.source!r}, got {token[1]!r}")
        self.position += 1
        return token

    def evaluate(self) -> Any:
        value = self._or()
        if self.position != len(self.tokens):
            raise ExpressionError(f"trailing tokens in {self.source!r}")
        return value

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value or right
        return value

    def _and(self) -> Any:
        value = self._unary()
        while self._peek() == "&&":
            self._take()
            right = self._unary()
            value = value and right
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not self._unary()
        return self._comparison()

    def _comparison(self) -> Any:
        left = self._primary()
        operator = self._peek()
        if operator in {"==", "!=", "<", ">", "<=", ">="}:
            self._take()
            right = self._primary()
            if operator == "==":
                return _equal(left, right)
            if operator == "!=":
                return not _equal(left, right)
            compare = {"<": float.__lt__, ">": float.__gt__, "<=": float.__le__, ">=": float.__ge__}
            return compare[operator](float(left), float(right))
        return left

    def _primary(self) -> Any:
        kind, value = self._take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return float(value)
        if value == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind != "name":
            raise ExpressionError(f"unexpected {value!r} in {self.source!r}")
        if value in {"true", "false"}:
            return value == "true"
        if value == "null":
            return None
        if self._peek() == "(":
            return self._call(value)
        if value not in self.contexts:
            raise ExpressionError(f"unknown context {value!r} in {self.source!r}")
        current = self.contexts[value]
        while self._peek() in {".", "["}:
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                key = _text(self._or())
                self._take("]")
            current = current.get(key) if isinstance(current, dict) else None
        return current

    def _call(self, name: str) -> Any:
        function = self.functions.get(name.lower())
        if function is None:
            raise ExpressionError(f"function {name}() is not supported here ({self.source!r})")
        self._take("(")
        arguments = []
        while self._peek() != ")":
            arguments.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        return function(*arguments)


STATUS_FUNCTIONS = {"success", "failure", "always", "cancelled"}
INTERPOLATION = re.compile(r"\$\{\{((?:(?!\}\}).)*)\}\}", re.DOTALL)


# --- records --------------------------------------------------------------------------------


@dataclass
class StepRecord:
    job: str
    name: str
    kind: str  # run | dry-run | local | cloud-skipped | skipped
    command: str
    outcome: str  # success | failure | skipped
    output: str = ""

    @property
    def argv(self) -> list[str]:
        """A dry-run's command as arguments (line continuations joined)."""
        return shlex.split(self.output.replace("\\\n", " "))


@dataclass
class JobRecord:
    name: str
    result: str  # success | failure | skipped
    runs_on: Any = None
    steps: list[StepRecord] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


# --- the runner -----------------------------------------------------------------------------


class WorkflowRunner:
    """Runs workflow jobs in ``workspace`` with ``github``/``vars``/``secrets``/``inputs``.

    ``execute=False`` plans instead: every `make` step is only expanded with `make -n`.
    """

    def __init__(
        self,
        workspace: Path,
        github: dict[str, Any],
        env: dict[str, str],
        variables: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        inputs: dict[str, Any] | None = None,
        execute: bool = True,
        artifacts: Path | None = None,
    ) -> None:
        self.workspace = workspace
        self.github = github
        self.base_env = env
        self.vars = variables or {}
        self.secrets = secrets or {}
        self.inputs = inputs or {}
        self.execute = execute
        self.artifacts = artifacts or workspace.parent / f"{workspace.name}-artifacts"
        self.jobs: dict[str, JobRecord] = {}

    # expressions

    def evaluate(self, source: str, extra: dict[str, Any], status: dict[str, bool]) -> Any:
        contexts = {
            "github": self.github,
            "vars": self.vars,
            "secrets": self.secrets,
            "inputs": self.inputs,
            "runner": {"os": "Linux", "arch": "X64", "temp": str(self.artifacts)},
            **extra,
        }
        functions: dict[str, Callable] = {
            "success": lambda: status["success"],
            "failure": lambda: not status["success"],
            "always": lambda: True,
            "cancelled": lambda: False,
            "fromjson": json.loads,
            "tojson": json.dumps,
            "contains": lambda haystack, needle: (
                any(_equal(item, needle) for item in haystack)
                if isinstance(haystack, list)
                else _text(needle).lower() in _text(haystack).lower()
            ),
            "startswith": lambda text, prefix: (
                _text(text).lower().startswith(_text(prefix).lower())
            ),
            "format": lambda template, *args: re.sub(
                r"\{(\d+)\}", lambda m: _text(args[int(m.group(1))]), template
            ),
        }
        return Expression(source, contexts, functions).evaluate()

    def interpolate(self, value: Any, extra: dict[str, Any], status: dict[str, bool]) -> Any:
        """Replace every ${{ }} in a string; a string that is one expression keeps its type."""
        if not isinstance(value, str):
            return value
        whole = INTERPOLATION.fullmatch(value.strip())
        if whole:
            return self.evaluate(whole.group(1).strip(), extra, status)
        return INTERPOLATION.sub(
            lambda m: _text(self.evaluate(m.group(1).strip(), extra, status)), value
        )

    def condition(self, source: Any, extra: dict[str, Any], status: dict[str, bool]) -> bool:
        if source is None:
            return status["success"]
        if isinstance(source, bool):
            return source
        text = INTERPOLATION.sub(lambda m: m.group(1), str(source)).strip()
        value = bool(self.evaluate(text, extra, status))
        # Without a status function GitHub adds an implicit success().
        names = {name.lower() for name in re.findall(r"([A-Za-z]+)\s*\(", text)}
        if not names & STATUS_FUNCTIONS:
            value = value and status["success"]
        return value

    # workflows

    def run_workflow(self, path: Path, only: list[str] | None = None) -> dict[str, JobRecord]:
        workflow = yaml.safe_load(path.read_text())
        jobs = workflow["jobs"]
        order = self._order(jobs)
        for job_id in order:
            if only is not None and job_id not in only:
                continue
            self.jobs[job_id] = self._run_job(workflow, job_id, jobs[job_id])
        return self.jobs

    @staticmethod
    def _order(jobs: dict[str, Any]) -> list[str]:
        done: list[str] = []

        def visit(job_id: str) -> None:
            if job_id in done:
                return
            needs = jobs[job_id].get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                visit(need)
            done.append(job_id)

        for job_id in jobs:
            visit(job_id)
        return done

    def _needs_context(self, job: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        context = {
            need: {
                "result": self.jobs[need].result if need in self.jobs else "skipped",
                "outputs": self.jobs[need].outputs if need in self.jobs else {},
            }
            for need in needs
        }
        success = all(value["result"] == "success" for value in context.values())
        return context, success

    def _run_job(self, workflow: dict[str, Any], job_id: str, job: dict[str, Any]) -> JobRecord:
        needs, needs_ok = self._needs_context(job)
        status = {"success": needs_ok}
        extra: dict[str, Any] = {"needs": needs, "env": {}, "steps": {}, "job": {}}
        record = JobRecord(name=job_id, result="skipped")
        if not self.condition(job.get("if"), extra, status):
            return record
        record.runs_on = self.interpolate_tree(job.get("runs-on"), extra, status)
        env = dict(self.base_env)
        env.update(self._github_env())
        for level in (workflow.get("env", {}), job.get("env", {})):
            for key, value in level.items():
                env[key] = _text(self.interpolate(value, {**extra, "env": env}, status))
        extra["env"] = env
        status = {"success": True}
        for index, step in enumerate(job.get("steps", [])):
            self._run_step(record, job_id, index, step, env, extra, status)
        record.result = "success" if status["success"] else "failure"
        for key, value in job.get("outputs", {}).items():
            record.outputs[key] = _text(self.interpolate(value, extra, status))
        return record

    def interpolate_tree(self, value: Any, extra: dict[str, Any], status: dict[str, bool]) -> Any:
        if isinstance(value, list):
            return [self.interpolate_tree(item, extra, status) for item in value]
        if isinstance(value, dict):
            return {key: self.interpolate_tree(item, extra, status) for key, item in value.items()}
        return self.interpolate(value, extra, status)

    def _github_env(self) -> dict[str, str]:
        """The default variables every GitHub job sees (the subset the project reads)."""
        files = self.artifacts / "runner"
        files.mkdir(parents=True, exist_ok=True)
        names = {
            "GITHUB_EVENT_NAME": "event_name",
            "GITHUB_REF": "ref",
            "GITHUB_BASE_REF": "base_ref",
            "GITHUB_HEAD_REF": "head_ref",
            "GITHUB_REPOSITORY": "repository",
            "GITHUB_RUN_ID": "run_id",
            "GITHUB_RUN_ATTEMPT": "run_attempt",
            "GITHUB_SERVER_URL": "server_url",
        }
        env = {name: _text(self.github.get(key)) for name, key in names.items()}
        env.update(
            CI="true",
            GITHUB_ACTIONS="true",
            GITHUB_WORKSPACE=str(self.workspace),
            GITHUB_OUTPUT=str(files / "output"),
            GITHUB_ENV=str(files / "env"),
            GITHUB_STEP_SUMMARY=str(files / "summary.md"),
        )
        return env

    def _run_step(
        self,
        record: JobRecord,
        job_id: str,
        index: int,
        step: dict[str, Any],
        job_env: dict[str, str],
        extra: dict[str, Any],
        status: dict[str, bool],
    ) -> None:
        name = step.get("name") or step.get("uses") or step.get("run", "").strip()
        step_id = step.get("id", f"step{index}")
        if not self.condition(step.get("if"), extra, status):
            record.steps.append(StepRecord(job_id, name, "skipped", "", "skipped"))
            extra["steps"][step_id] = {"outcome": "skipped", "conclusion": "skipped"}
            return
        env = dict(job_env)
        for key, value in step.get("env", {}).items():
            env[key] = _text(self.interpolate(value, extra, status))
        if "uses" in step:
            with_ = {
                key: self.interpolate(value, extra, status)
                for key, value in step.get("with", {}).items()
            }
            steps = self._uses(job_id, name, step["uses"], with_, env, extra, status)
        else:
            script = self.interpolate(step["run"], {**extra, "env": env}, status)
            steps = [self._shell(job_id, name, script, env)]
        record.steps.extend(steps)
        outcome = "failure" if any(s.outcome == "failure" for s in steps) else "success"
        extra["steps"][step_id] = {"outcome": outcome, "conclusion": outcome}
        if outcome == "failure" and not step.get("continue-on-error"):
            status["success"] = False

    def _shell(self, job_id: str, name: str, script: str, env: dict[str, str]) -> StepRecord:
        target = re.fullmatch(r"make\s+([\w-]+)", script.strip())
        if target:
            plan = subprocess.run(
                ["make", "-n", target.group(1)],
                cwd=self.workspace,
                env=env,
                capture_output=True,
                text=True,
            )
            if plan.returncode != 0:
                return StepRecord(job_id, name, "dry-run", script, "failure", plan.stderr)
            if not self.execute or REMOTE_TOOLS.search(plan.stdout):
                return StepRecord(job_id, name, "dry-run", script, "success", plan.stdout.strip())
        # GitHub's default shell: bash with -e and pipefail, no profile.
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
        )
        outcome = "success" if result.returncode == 0 else "failure"
        return StepRecord(job_id, name, "run", script, outcome, result.stdout + result.stderr)

    def _uses(
        self,
        job_id: str,
        name: str,
        uses: str,
        with_: dict[str, Any],
        env: dict[str, str],
        extra: dict[str, Any],
        status: dict[str, bool],
    ) -> list[StepRecord]:
        if uses.startswith("./"):
            return self._composite(job_id, uses, env, extra, status)
        action = uses.split("@")[0]
        if action in NO_OP_ACTIONS:
            return [StepRecord(job_id, name, "local", uses, "success", NO_OP_ACTIONS[action])]
        if action in CLOUD_ACTIONS:
            return [StepRecord(job_id, name, "cloud-skipped", uses, "success", json.dumps(with_))]
        if not self.execute and action in {"actions/upload-artifact", "actions/download-artifact"}:
            return [StepRecord(job_id, name, "local", uses, "success", json.dumps(with_))]
        if action == "actions/upload-artifact":
            return [self._upload(job_id, name, uses, with_)]
        if action == "actions/download-artifact":
            return [self._download(job_id, name, uses, with_)]
        raise ValueError(f"{uses}: no local equivalent; add one to workflow_runner.py")

    def _composite(
        self,
        job_id: str,
        uses: str,
        env: dict[str, str],
        extra: dict[str, Any],
        status: dict[str, bool],
    ) -> list[StepRecord]:
        directory = self.workspace / uses[2:]
        action = yaml.safe_load((directory / "action.yml").read_text())
        if action["runs"]["using"] != "composite":
            raise ValueError(f"{uses} is not a composite action")
        records = []
        for step in action["runs"]["steps"]:
            name = step.get("name") or step.get("uses") or step.get("run", "").strip()
            step_env = dict(env)
            for key, value in step.get("env", {}).items():
                step_env[key] = _text(self.interpolate(value, extra, status))
            if "uses" in step:
                with_ = dict(step.get("with", {}))
                records += self._uses(job_id, name, step["uses"], with_, step_env, extra, status)
            else:
                if step.get("shell") != "bash":
                    raise ValueError(f"{uses}: run steps of a composite action need shell: bash")
                records.append(self._shell(job_id, name, step["run"], step_env))
            if records[-1].outcome == "failure":
                break
        return records

    def _upload(self, job_id: str, name: str, uses: str, with_: dict[str, Any]) -> StepRecord:
        store = self.artifacts / with_["name"]
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        paths = [line.strip() for line in str(with_["path"]).splitlines() if line.strip()]
        copied = []
        for relative in paths:
            source = self.workspace / relative
            if source.is_dir():
                shutil.copytree(source, store / relative)
                copied += [str(p.relative_to(store)) for p in (store / relative).rglob("*")]
            elif source.exists():
                (store / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, store / relative)
                copied.append(relative)
            elif with_.get("if-no-files-found") == "error":
                return StepRecord(job_id, name, "local", uses, "failure", f"{relative} missing")
        return StepRecord(job_id, name, "local", uses, "success", "\n".join(sorted(copied)))

    def _download(self, job_id: str, name: str, uses: str, with_: dict[str, Any]) -> StepRecord:
        store = self.artifacts / with_["name"]
        if not store.is_dir():
            return StepRecord(job_id, name, "local", uses, "failure", f"no artifact {store.name}")
        target = self.workspace / with_.get("path", ".")
        shutil.copytree(store, target, dirs_exist_ok=True)
        files = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
        return StepRecord(job_id, name, "local", uses, "success", "\n".join(files))
