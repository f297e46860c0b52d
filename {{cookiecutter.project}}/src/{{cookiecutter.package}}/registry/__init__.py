"""Where models live between runs: MLflow tracking and registry, git history, the champion and
the promotion decision."""
