"""Customer churn classifier with a reproducible DVC + MLflow lifecycle."""

__version__ = "0.1.0"
