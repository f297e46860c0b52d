"""Features, models, metrics and plots."""

# Per-epoch losses in a model directory, written by families that train in epochs; the register
# stage logs them. Here, not in model.py, so that reading the name does not import sklearn.
HISTORY_FILE = "history.json"
