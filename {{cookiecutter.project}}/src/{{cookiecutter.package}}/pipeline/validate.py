"""Stage ``validate``: only data that keeps the contract reaches training.

On failure it writes a report naming each failing column, check and example rows, writes no
split, and exits non-zero so DVC stops before ``train`` (the previous model stays in place).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.contract.schema import RawRecord
from {{ cookiecutter.package }}.contract.validation import ContractError, Problem, validate
from {{ cookiecutter.package }}.data import read_table, split, write_table


@dataclass
class ValidationResult:
    rows: int
    columns: list[str]
    problems: list[Problem]

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "valid": self.valid,
            "rows": self.rows,
            "columns": self.columns,
            "problems": [problem.to_dict() for problem in self.problems],
        }

    def markdown(self) -> str:
        if self.valid:
            return f"Data validation passed: {self.rows} rows, {len(self.columns)} columns.\n"
        lines = [
            f"Data validation FAILED: {len(self.problems)} problem(s) in {self.rows} rows.",
            "",
            "| column | check | expected | received | example rows |",
            "|---|---|---|---|---|",
        ]
        for problem in self.problems:
            rows = ", ".join(map(str, problem.rows[:5])) or "-"
            lines.append(
                f"| {problem.column} | {problem.check} | {problem.expected} "
                f"| {problem.received} | {rows} |"
            )
        return "\n".join(lines) + "\n"


def check_frame(frame: pd.DataFrame) -> ValidationResult:
    """Validate labelled, anonymised rows against ``RawRecord``."""
    try:
        validate(frame, RawRecord)
    except ContractError as error:
        return ValidationResult(len(frame), list(frame.columns), error.problems)
    return ValidationResult(len(frame), list(frame.columns), [])


def run(
    settings: Settings, source: Path, report: Path, train_path: Path, test_path: Path
) -> ValidationResult:
    """Validate ``source``; on success write the stratified train/test split."""
    frame = read_table(source)
    result = check_frame(frame)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    report.with_suffix(".md").write_text(result.markdown())
    if result.valid:
        train, test = split(frame, settings.data.target, settings.data.test_size, settings.seed)
        write_table(train, train_path)
        write_table(test, test_path)
    return result
