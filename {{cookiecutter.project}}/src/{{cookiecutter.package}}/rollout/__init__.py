"""Moving traffic to a new model: the local canary behind Caddy, Argo Rollouts on Kubernetes,
and the analysis both judge a step by."""
