"""The decisions around a change: the PR quality gate, the PR report, the retraining report."""
