"""Features, models, metrics and plots."""
