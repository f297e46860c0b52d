"""Curve tables and their PNGs: written by the evaluate stage, compared by the PR report.

The CSV tables are what DVC and git version (`dvc plots diff` reads them); the PNGs are drawn
from those tables only, so a plot of any commit can be redrawn from its committed CSVs. The
confusion table names the classes as the data does (data.target's values), negatives first, so
the file itself says which class is the positive one.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

PLOT_FILES = ["roc.csv", "precision_recall.csv", "confusion.csv"]
CURVES = [  # (file, x, y, title)
    ("roc.csv", "fpr", "tpr", "ROC"),
    ("precision_recall.csv", "recall", "precision", "precision-recall"),
]


def write_tables(
    truth: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    out: Path,
    classes: tuple[str, str] = ("negative", "positive"),
) -> None:
    """ROC, precision-recall and confusion tables as CSV files; ``classes`` names the negative
    and the positive class (data.class_names)."""
    from sklearn import metrics as skm

    out.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = skm.roc_curve(truth, scores)
    pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(6).to_csv(out / "roc.csv", index=False)
    precision, recall, _ = skm.precision_recall_curve(truth, scores)
    pd.DataFrame({"recall": recall, "precision": precision}).round(6).to_csv(
        out / "precision_recall.csv", index=False
    )
    names = np.array(classes, dtype=object)
    order = np.argsort(truth, kind="stable")  # negatives first: render_pngs reads the order
    predicted = (scores[order] >= threshold).astype(int)
    pd.DataFrame({"actual": names[truth[order]], "predicted": names[predicted]}).to_csv(
        out / "confusion.csv", index=False
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def render_pngs(directory: Path, title: str = "") -> list[Path]:
    """A PNG next to each table in ``directory`` (offline: no vega CDN needed)."""
    plt = _pyplot()
    written = []
    for name, x, y, label in CURVES:
        frame = pd.read_csv(directory / name)
        figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
        axis.plot(frame[x], frame[y])
        axis.set(xlabel=x, ylabel=y, title=f"{label} {title}".strip(), xlim=(0, 1), ylim=(0, 1.02))
        figure.tight_layout()
        written.append(_save(plt, figure, directory / name.replace(".csv", ".png")))
    confusion = pd.read_csv(directory / "confusion.csv", dtype=str, keep_default_na=False)
    classes = list(dict.fromkeys([*confusion["actual"], *confusion["predicted"]]))
    table = pd.crosstab(confusion["actual"], confusion["predicted"]).reindex(
        index=classes, columns=classes, fill_value=0
    )
    figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
    counts = table.to_numpy()
    axis.imshow(counts, cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        # White on the dark cells, black on the light ones, so every count stays readable.
        color = "white" if count > counts.max() / 2 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=color)
    axis.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=table.columns,
        yticklabels=table.index,
        xlabel="predicted",
        ylabel="actual",
        title=f"confusion {title}".strip(),
    )
    figure.tight_layout()
    written.append(_save(plt, figure, directory / "confusion.png"))
    return written


def render_overlay(sides: Mapping[str, Mapping[str, str]], path: Path) -> Path:
    """ROC and precision-recall curves of several snapshots on shared axes.

    ``sides`` maps a label to its table texts; the first label is drawn dashed (the base).
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=100)
    for axis, (name, x, y, title) in zip(axes, CURVES, strict=True):
        for index, (label, tables) in enumerate(sides.items()):
            if name in tables:
                frame = pd.read_csv(io.StringIO(tables[name]))
                axis.plot(frame[x], frame[y], "--" if index == 0 else "-", label=label)
        axis.set(xlabel=x, ylabel=y, title=title, xlim=(0, 1), ylim=(0, 1.02))
        axis.legend(loc="lower right" if name == "roc.csv" else "upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(plt, figure, path)


def _save(plt, figure, path: Path) -> Path:
    figure.savefig(path)
    plt.close(figure)
    return path
