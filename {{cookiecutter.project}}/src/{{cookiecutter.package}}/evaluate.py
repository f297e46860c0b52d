"""Stage ``evaluate``: holdout metrics and the plots DVC and the PR report compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from {{ cookiecutter.package }}.data import read_table
from {{ cookiecutter.package }}.model import ChurnModel, load_model
from {{ cookiecutter.package }}.train import inputs, labels

METRIC_NAMES = ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
# Direction of improvement per metric, read by the report and the gate.
HIGHER_IS_BETTER = {name: name != "log_loss" for name in METRIC_NAMES}


def compute_metrics(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (scores >= threshold).astype(int)
    values = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(truth, predicted, zero_division=0),
        "recall": skm.recall_score(truth, predicted, zero_division=0),
        "f1": skm.f1_score(truth, predicted, zero_division=0),
        "roc_auc": skm.roc_auc_score(truth, scores),
        "log_loss": skm.log_loss(truth, scores, labels=[0, 1]),
    }
    return {name: round(float(value), 6) for name, value in values.items()}


def score(model: ChurnModel, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(inputs(frame))[:, 1]


def write_plot_data(truth: np.ndarray, scores: np.ndarray, threshold: float, out: Path) -> None:
    """Curves as CSV files that `dvc plots diff` and the report compare across commits."""
    out.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = skm.roc_curve(truth, scores)
    pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(6).to_csv(out / "roc.csv", index=False)
    precision, recall, _ = skm.precision_recall_curve(truth, scores)
    pd.DataFrame({"recall": recall, "precision": precision}).round(6).to_csv(
        out / "precision_recall.csv", index=False
    )
    names = np.array(["stays", "churns"])
    pd.DataFrame(
        {"actual": names[truth], "predicted": names[(scores >= threshold).astype(int)]}
    ).to_csv(out / "confusion.csv", index=False)


def render_pngs(directory: Path, title: str = "") -> list[Path]:
    """PNG versions of the plot data (offline: no vega CDN needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roc = pd.read_csv(directory / "roc.csv")
    pr = pd.read_csv(directory / "precision_recall.csv")
    confusion = pd.read_csv(directory / "confusion.csv")
    written = []
    for name, frame, x, y in [
        ("roc", roc, "fpr", "tpr"),
        ("precision_recall", pr, "recall", "precision"),
    ]:
        figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
        axis.plot(frame[x], frame[y])
        axis.set(
            xlabel=x,
            ylabel=y,
            title=f"{name.replace('_', ' ')} {title}".strip(),
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        figure.tight_layout()
        figure.savefig(directory / f"{name}.png")
        plt.close(figure)
        written.append(directory / f"{name}.png")
    table = pd.crosstab(confusion["actual"], confusion["predicted"]).reindex(
        index=["stays", "churns"], columns=["stays", "churns"], fill_value=0
    )
    figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
    axis.imshow(table.to_numpy(), cmap="Blues")
    counts = table.to_numpy()
    for (row, column), count in np.ndenumerate(counts):
        # White on the dark cells, black on the light ones, so every count stays readable.
        color = "white" if count > counts.max() / 2 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=color)
    axis.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=table.columns,
        yticklabels=table.index,
        xlabel="predicted",
        ylabel="actual",
        title=f"confusion {title}".strip(),
    )
    figure.tight_layout()
    figure.savefig(directory / "confusion.png")
    plt.close(figure)
    written.append(directory / "confusion.png")
    return written


def run(
    params: dict, model_dir: Path, test_path: Path, metrics_path: Path, plots_dir: Path
) -> dict[str, float]:
    frame = read_table(test_path)
    model = load_model(model_dir)
    truth = labels(frame, params)
    scores = score(model, frame)
    threshold = params["evaluate"]["threshold"]
    values = compute_metrics(truth, scores, threshold)
    metrics_path.write_text(json.dumps(values, indent=2) + "\n")
    write_plot_data(truth, scores, threshold, plots_dir)
    render_pngs(plots_dir)
    return values
