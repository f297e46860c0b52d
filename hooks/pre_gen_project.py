"""Reject invalid cookiecutter answers before anything is generated.

Each check returns one ``ERROR:`` sentence naming the option, what is wrong and a valid
example. cookiecutter deletes the half-made directory when this hook exits non-zero.
"""

from __future__ import annotations

import itertools
import json
import keyword
import re
import sys

# Rendered by cookiecutter; a raw string so JSON escapes survive Python's parser.
ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

CHOICES = {
    "model": ["sklearn", "torch"],
    "gpu_runner": ["none", "self-hosted", "cloud-aws", "cloud-gcp", "cloud-azure"],
    "dvc_remote": ["local", "s3", "gcs", "azure"],
    "mlflow_tracking": ["local", "server"],
    "deploy": ["local", "kubernetes"],
}

PROJECT_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE_RE = re.compile(r"^[a-z_][a-z0-9_]*$")

# (name, lowest, highest) of the five cron fields, in order.
CRON_FIELDS = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
]
CRON_ATOM = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")
# GitHub runs a schedule at most every 5 minutes (and actionlint rejects a shorter interval).
MIN_CRON_GAP_MINUTES = 5


def check_project(value: str) -> str | None:
    if not PROJECT_RE.match(value) or len(value) > 64:
        return (
            f"ERROR: project {value!r} is not a valid name: use lowercase letters, digits and "
            "single '-' between them, starting with a letter (example: churn-model)."
        )
    return None


def check_package(value: str) -> str | None:
    if not PACKAGE_RE.match(value) or keyword.iskeyword(value):
        return (
            f"ERROR: package {value!r} is not a Python identifier: use lowercase letters, "
            "digits and '_', not starting with a digit or being a keyword (example: churn_model)."
        )
    return None


def check_choice(option: str, value: str) -> str | None:
    allowed = CHOICES[option]
    if value not in allowed:
        return (
            f"ERROR: {option} {value!r} is not one of {', '.join(allowed)} "
            f"(example: {option}={allowed[0]})."
        )
    return None


def _cron_field_ok(field: str, low: int, high: int) -> bool:
    for atom in field.split(","):
        match = CRON_ATOM.match(atom)
        if not match:
            return False
        numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
        if any(n < low or n > high for n in numbers):
            return False
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            return False
        if match.group(3) and int(match.group(3)[1:]) == 0:
            return False
    return True


def _cron_values(field: str, low: int, high: int) -> set[int]:
    """The numbers a valid cron field matches (``*/15`` -> 0, 15, 30, 45)."""
    values: set[int] = set()
    for atom in field.split(","):
        match = CRON_ATOM.match(atom)
        span, step = match.group(1), int(match.group(3)[1:]) if match.group(3) else 1
        if span == "*":
            first, last = low, high
        else:
            numbers = [int(n) for n in span.split("-")]
            first, last = numbers[0], numbers[-1] if len(numbers) == 2 or step == 1 else high
        values.update(range(first, last + 1, step))
    return values


def shortest_cron_gap(minute: str, hour: str) -> int:
    """The fewest minutes between two runs of a schedule on one day or across midnight."""
    runs = sorted(
        h * 60 + m for h in _cron_values(hour, 0, 23) for m in _cron_values(minute, 0, 59)
    )
    gaps = [b - a for a, b in itertools.pairwise(runs)] + [runs[0] + 1440 - runs[-1]]
    return min(gaps)


def check_cron(value: str) -> str | None:
    fields = value.split()
    example = "(example: '0 6 * * 1' = Mondays 06:00 UTC)"
    if len(fields) != 5:
        return (
            f"ERROR: retrain_schedule {value!r} has {len(fields)} fields; GitHub cron needs "
            f"5: minute hour day-of-month month day-of-week {example}."
        )
    for field, (name, low, high) in zip(fields, CRON_FIELDS, strict=True):
        if not _cron_field_ok(field, low, high):
            return (
                f"ERROR: retrain_schedule {value!r} has an invalid {name} field {field!r}: "
                f"use *, numbers {low}-{high}, ranges, lists or steps {example}."
            )
    gap = shortest_cron_gap(fields[0], fields[1])
    if gap < MIN_CRON_GAP_MINUTES:
        return (
            f"ERROR: retrain_schedule {value!r} runs {gap} minute(s) apart; GitHub runs "
            f"schedules at most every {MIN_CRON_GAP_MINUTES} minutes: space the runs at least "
            f"that far {example}."
        )
    return None


def errors(answers: dict) -> list[str]:
    project_error = check_project(answers["project"])
    derived = answers["package"] == answers["project"].replace("-", "_")
    found = [
        project_error,
        # A package derived from a bad project name would only repeat the same problem.
        None if project_error and derived else check_package(answers["package"]),
        *(check_choice(option, answers[option]) for option in CHOICES),
        check_cron(answers["retrain_schedule"]),
    ]
    return [message for message in found if message]


def main(answers: dict) -> int:
    problems = errors(answers)
    for message in problems:
        print(message, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(ANSWERS))
