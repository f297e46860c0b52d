"""How often the canary's score-shift check rolls back a good model, and catches a bad one.

A default bake's data and recipe, in one run on this machine: the champion (params.yaml's
seed), a good challenger (the same recipe, the next seed: what a retrain gives) and a shifted
one (trained on flipped labels: it answers 200 and predicts the opposite). Each scores the
whole holdout once. Then, many times over, disjoint random samples of the holdout play one
step of a rollout: the stable server scores its share with the champion, the canary its share
with the challenger, and each rule decides rollback or not from the two score histograms over
the service's 20 buckets. Sample sizes are those of real steps: a 5 % step of light traffic
(60 canary scores against 1140), the local canary's first step (150 against 446) and its last
(582 against 446, as in the failing CI run that prompted this).

Rules, each against its predecessor on the very same samples:
- local, before: PSI (sparse buckets pooled, half a count of smoothing) > max_score_psi and
  chi-square p < canary.local.significance;
- local, now: the same with the PSI less its sampling noise, ``(k - 1) * (1/n + 1/m)``
  (``rollout.analysis.psi``: ``monitoring.stats.psi`` of the pooled bins);
- Kubernetes, before: the PSI the AnalysisTemplate computed (20 bins, shares floored at 0.0001,
  no test) > max_score_psi;
- Kubernetes, now: 20 bins smoothed by half a count, less the noise, > max_score_psi
  (``monitoring.stats.psi`` of the 20 bins: what the AnalysisTemplate's query computes).

Results go to the "score_shift" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bakery import bake
from report import table, write_section
from rich.console import Console

console = Console()
SIZES = [(60, 1140), (150, 446), (582, 446)]  # (canary scores, stable scores) per step

# Formatted with the package name, trials and sizes; runs in the bake's source tree.
CHILD = """
import json, math, sys
from collections import Counter
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from {pkg}.config import load_settings
from {pkg}.contract.validation import FEATURES
from {pkg}.data import anonymise, load_source, split
from {pkg}.monitoring import stats
from {pkg}.rollout.analysis import bin_counts, psi, shift_p_value
from {pkg}.serving import SCORE_BUCKETS
from {pkg}.pipeline.train import fit

threadpool_limits(1)
settings = load_settings(Path("params.yaml"))
data = settings.data
clean = anonymise(load_source(data.source), data.pii.hash, data.pii.drop)
train, holdout = split(clean, data.target, data.test_size, settings.seed)
flipped = settings.data.model_copy(update={{"positive_class": "No"}})
models = {{
    "champion": fit(settings, train),
    "good": fit(settings.model_copy(update={{"seed": settings.seed + 1}}), train),
    "shifted": fit(settings.model_copy(update={{"data": flipped}}), train),
}}
scores = {{name: m.predict_proba(holdout[FEATURES])[:, 1] for name, m in models.items()}}
BOUNDS = [*SCORE_BUCKETS, math.inf]
limit, level = settings.canary.max_score_psi, settings.canary.local.significance


def histogram(values):
    return Counter({{b: float((values <= b).sum()) for b in BOUNDS}})


def raw_local(stable, canary):
    reference, observed = stats.pooled_bins(bin_counts(stable), bin_counts(canary))
    bins = len(reference)
    smoothing = stats.SMOOTHING
    e = [(c + smoothing) / (sum(reference) + smoothing * bins) for c in reference]
    o = [(c + smoothing) / (sum(observed) + smoothing * bins) for c in observed]
    return sum((b - a) * math.log(b / a) for a, b in zip(e, o))


def twenty_bins(values):
    return np.histogram(values, bins=[-math.inf, *BOUNDS])[0]


def k8s(stable, canary, now):
    if now:
        return stats.psi(twenty_bins(stable), twenty_bins(canary))
    s = np.maximum(twenty_bins(stable) / len(stable), 0.0001)
    c = np.maximum(twenty_bins(canary) / len(canary), 0.0001)
    return float(((c - s) * np.log(c / s)).sum())


rng = np.random.default_rng(20261201)
trials, sizes = {trials}, {sizes}
out = {{}}
for n_canary, n_stable in sizes:
    for challenger in ("good", "shifted"):
        counts = Counter()
        for _ in range(trials):
            order = rng.permutation(len(holdout))
            stable = scores["champion"][order[:n_stable]]
            canary = scores[challenger][order[n_stable:n_stable + n_canary]]
            hs, hc = histogram(stable), histogram(canary)
            p = shift_p_value(hs, hc)
            noise_free = psi(hs, hc)
            counts["local, before"] += raw_local(hs, hc) > limit and p < level
            counts["local, now"] += noise_free > limit and p < level
            counts["Kubernetes, before"] += k8s(stable, canary, now=False) > limit
            counts["Kubernetes, now"] += k8s(stable, canary, now=True) > limit
        out[f"{{n_canary}}/{{n_stable}}/{{challenger}}"] = dict(counts)
print(json.dumps(dict(limit=limit, level=level, holdout=len(holdout), rates=out)))
"""

RULES = ["local, before", "local, now", "Kubernetes, before", "Kubernetes, now"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=2000, help="samples per step size")
    args = parser.parse_args()
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        project = bake(Path(tmp) / "bake", project="bench-shift")
        env = {**os.environ, **threads, "PYTHONPATH": str(project / "src")}
        code = CHILD.format(pkg="bench_shift", trials=args.trials, sizes=SIZES)
        with console.status(f"3 models, {args.trials} samples x {len(SIZES)} step sizes"):
            result = subprocess.run(
                [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True
            )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-4000:])
    found = json.loads(result.stdout.strip().splitlines()[-1])
    rows = []
    for n_canary, n_stable in SIZES:
        good = found["rates"][f"{n_canary}/{n_stable}/good"]
        shifted = found["rates"][f"{n_canary}/{n_stable}/shifted"]
        for rule in RULES:
            rows.append(
                [
                    f"{n_canary} / {n_stable}",
                    rule,
                    f"{100 * good.get(rule, 0) / args.trials:.2f} %",
                    f"{100 * shifted.get(rule, 0) / args.trials:.1f} %",
                ]
            )
            console.print(" | ".join(str(cell) for cell in rows[-1]))
    body = "\n\n".join(
        [
            f"A default bake's data and recipe. The champion is trained with params.yaml's seed, "
            "the good challenger with the next seed (what a retrain gives), the shifted one on "
            f"flipped labels. Each scores the {found['holdout']} holdout records once; then "
            f"{args.trials} times per step size, disjoint random samples of the holdout are "
            "scored by the champion (stable) and the challenger (canary), and each rule decides "
            f"from the two histograms over the service's 20 score buckets. max_score_psi "
            f"{found['limit']}, significance {found['level']} (params.yaml). Baselines are the "
            "rules as they were before this change, on the very same samples.",
            table(["canary / stable scores", "rule", "good rolled back", "shifted caught"], rows),
            "The Kubernetes rules have no chi-square test (Argo's analysis compares one number "
            "with a limit), so the noise of a small step decides them alone.",
        ]
    )
    write_section("score_shift", "Canary score-shift check: false rollbacks and detection", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
