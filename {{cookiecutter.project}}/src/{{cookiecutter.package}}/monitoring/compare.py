"""`make drift`: two files compared column by column, with the model's scores when asked."""

from __future__ import annotations

from pathlib import Path

from {{ cookiecutter.package }}.config import DRIFT_REPORT, TRAIN_SPLIT, Settings
from {{ cookiecutter.package }}.contract.records import contract_kinds
from {{ cookiecutter.package }}.contract.validation import inputs
from {{ cookiecutter.package }}.data import read_table
from {{ cookiecutter.package }}.monitoring.drift import DriftReport, drift, write_report
from {{ cookiecutter.package }}.serving.choice import Choice, load


def compare_files(
    settings: Settings,
    current: Path,
    reference: Path = TRAIN_SPLIT,
    output: Path = DRIFT_REPORT,
    scores_of: Choice | None = None,
) -> DriftReport:
    """Drift of ``current`` against ``reference`` -> ``output`` and its markdown next to it.

    ``scores_of``: also compare the scores this model gives both samples.
    """
    if not reference.exists():
        raise FileNotFoundError(
            f"{reference} not found: run `make repro` to write the training split, or pass "
            "another reference (make drift REFERENCE=...)"
        )
    if not current.exists():
        raise FileNotFoundError(
            f"{current} not found: name the sample to compare with the training data, "
            "make drift CURRENT=<a .csv or .parquet of recent records>"
        )
    kinds = contract_kinds()
    samples = read_table(reference), read_table(current)
    scores = None
    if scores_of is not None:
        model, _ = load(scores_of)
        scores = tuple(model.predict_proba(inputs(sample))[:, 1] for sample in samples)
    report = drift(*samples, kinds, settings.drift, scores=scores)
    write_report(report, output, output.with_suffix(".md"))
    return report


def summary(report: DriftReport, output: Path = DRIFT_REPORT) -> str:
    drifted = ", ".join(report.drifted_columns) or "none"
    return (
        f"drift in {len(report.drifted_columns)} of {len(report.results)} columns ({drifted}) "
        f"-> {output}, {output.with_suffix('.md')}"
    )
