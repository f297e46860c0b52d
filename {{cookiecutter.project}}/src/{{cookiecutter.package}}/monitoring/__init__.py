"""Watching the served model: drift, the monitor that asks for retraining, alert rules."""
