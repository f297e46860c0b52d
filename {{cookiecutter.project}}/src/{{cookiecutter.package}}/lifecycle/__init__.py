"""The decisions around a change: adopting a dataset, the PR quality gate, the PR report, the
retraining report."""
