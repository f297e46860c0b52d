"""Serving the model: the BentoML service, batch scoring, which model to serve, bentos, and the
samples of served predictions that `monitor` reads."""

# Upper bounds of the service's model_prediction_score histogram; the last bin is (0.95, +Inf].
# The canary analysis compares canary and stable over these bins, and the Argo query renders
# them (rollout/k8s.py); kept here so that neither has to import BentoML to read them.
SCORE_BUCKETS = tuple(round(0.05 * step, 2) for step in range(1, 20))
