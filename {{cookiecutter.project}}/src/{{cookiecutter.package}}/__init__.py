"""A binary classifier with a reproducible DVC + MLflow lifecycle (README.md says more)."""

__version__ = "0.1.0"
