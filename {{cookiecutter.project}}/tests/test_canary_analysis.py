"""What a canary step is judged on, from Prometheus text as `bentoml serve` writes it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from {{ cookiecutter.package }}.config import ParamsError, parse_settings
from {{ cookiecutter.package }}.rollout.analysis import (
    parse,
    psi,
    quantile,
    shift_p_value,
    tail_p_value,
)
from {{ cookiecutter.package }}.rollout.caddy import splitter_config
from {{ cookiecutter.package }}.serving import SCORE_BUCKETS

LABELS = {"runner_name": "svc", "service_name": "svc", "service_version": "not available"}
LATENCY_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]


def sample(name: str, labels: dict[str, object], value: float) -> str:
    inside = ",".join(f'{key}="{label}"' for key, label in labels.items())
    return name + "{" + inside + "} " + str(float(value))


def buckets(name: str, labels: dict, bounds: Sequence[float], values: list[float]) -> list[str]:
    lines = []
    for bound in [*bounds, float("inf")]:
        le = "+Inf" if bound == float("inf") else str(bound)
        count = sum(value <= bound for value in values)
        lines.append(sample(f"{name}_bucket", labels | {"le": le}, count))
    return lines


def metrics_text(codes: dict[tuple[str, int], int], latencies: list[float], scores: list[float]):
    """Prometheus text shaped like BentoML 1.4's (names, labels and buckets as it exports)."""
    lines = ["# TYPE bentoml_service_request_total counter"]
    for (endpoint, code), count in codes.items():
        labels = {"endpoint": endpoint, "http_response_code": code} | LABELS
        lines.append(sample("bentoml_service_request_total", labels, count))
    lines.append("# TYPE bentoml_service_request_duration_seconds histogram")
    labels = {"endpoint": "/predict", "http_response_code": 200} | LABELS
    lines += buckets("bentoml_service_request_duration_seconds", labels, LATENCY_BOUNDS, latencies)
    lines.append("# TYPE model_prediction_score histogram")
    lines += buckets("model_prediction_score", {"model_version": "1"}, SCORE_BUCKETS, scores)
    return "\n".join(lines) + "\n"


def test_counts_only_prediction_routes_and_splits_errors() -> None:
    text = metrics_text(
        {
            ("/predict", 200): 90,
            ("/predict", 500): 6,
            ("/predict_batch", 503): 4,
            ("/readyz", 200): 50,
        },
        [],
        [],
    )
    snapshot = parse(text)
    assert snapshot.requests == 100  # the probes are not traffic
    assert snapshot.errors == 10
    assert snapshot.error_rate == pytest.approx(0.1)


def test_step_deltas_subtract_the_snapshot_at_its_start() -> None:
    before = parse(metrics_text({("/predict", 200): 50}, [0.02] * 50, [0.1] * 50))
    after = parse(metrics_text({("/predict", 200): 60, ("/predict", 500): 40}, [0.02] * 100, []))
    step = after - before
    assert (step.requests, step.errors) == (50, 40)


def test_p95_interpolates_inside_its_bucket_like_histogram_quantile() -> None:
    latencies = [0.02] * 90 + [0.3] * 10  # the 95th observation lies in (0.25, 0.5]
    p95 = parse(metrics_text({}, latencies, [])).p95
    assert p95 == pytest.approx(0.25 + 0.25 * 0.5)
    assert quantile(0.95, Counter()) is None


def test_a_slow_tail_counts_only_when_it_is_more_than_noise() -> None:
    """Two slow requests in 20 put the p95 past the mark; 20 slow ones are a slow canary."""
    one_slow = parse(metrics_text({}, [0.03] * 18 + [0.3] * 2, [])).latency
    all_slow = parse(metrics_text({}, [2.0] * 20, [])).latency
    assert quantile(0.95, one_slow) > 0.1  # a p95 ratio alone would call it slow
    assert tail_p_value(one_slow, 0.1) > 0.01
    assert tail_p_value(all_slow, 0.1) < 1e-6


def test_psi_is_zero_for_equal_histograms_and_large_for_mirrored_scores() -> None:
    rng = np.random.default_rng(0)
    scores = list(rng.beta(2, 5, 2000))
    stable = parse(metrics_text({}, [], scores)).scores
    same = parse(metrics_text({}, [], scores)).scores
    mirrored = parse(metrics_text({}, [], [1 - s for s in scores])).scores
    assert psi(stable, same) == pytest.approx(0.0, abs=1e-12)
    assert psi(stable, mirrored) > 1.0
    assert shift_p_value(stable, mirrored) < 1e-6


def test_a_small_sample_of_the_same_model_is_noise_not_a_shift() -> None:
    """50 scores drawn from the stable distribution: neither number calls it a shift."""
    rng = np.random.default_rng(1)
    stable = parse(metrics_text({}, [], list(rng.beta(2, 5, 3000)))).scores
    canary = parse(metrics_text({}, [], list(rng.beta(2, 5, 50)))).scores
    assert psi(stable, canary) < 0.1
    assert shift_p_value(stable, canary) > 0.01


def test_psi_of_step_sized_samples_measures_the_distributions_not_the_noise() -> None:
    """A step's 150 canary and 446 stable scores: the same distribution scores about 0 on
    average (the raw PSI of such samples averages 0.13), a real shift scores what it scores on
    samples large enough to leave no noise."""
    rng = np.random.default_rng(2)

    def scores(a: float, n: int) -> Counter:
        return parse(metrics_text({}, [], list(rng.beta(a, 5, n)))).scores

    same = [psi(scores(2, 446), scores(2, 150)) for _ in range(200)]
    assert np.mean(same) < 0.02
    assert np.mean([value > 0.2 for value in same]) < 0.01
    population = psi(scores(2, 50_000), scores(3, 50_000))
    shifted = [psi(scores(2, 446), scores(3, 150)) for _ in range(200)]
    assert population > 0.2
    assert np.mean(shifted) == pytest.approx(population, rel=0.25)


def splitter_proxy(upstreams: dict[str, int], fallback: str | None = None) -> dict:
    """The reverse_proxy handler of the splitter's config for these weights."""
    config = splitter_config("unix//tmp/x.sock", "127.0.0.1:2019", upstreams, fallback)
    assert config["admin"]["listen"].startswith("127.0.0.1:")
    return config["apps"]["http"]["servers"]["front"]["routes"][0]["handle"][0]


def test_weight_zero_leaves_the_upstream_out_entirely() -> None:
    proxy = splitter_proxy({"a:1": 100, "b:2": 0})
    assert proxy["upstreams"] == [{"dial": "a:1"}]
    assert proxy["load_balancing"]["selection_policy"]["weights"] == [100]
    assert "POST" in proxy["load_balancing"]["retry_match"][0]["method"]
    with pytest.raises(ValueError, match="weight above 0"):
        splitter_config("unix//tmp/x.sock", "127.0.0.1:2019", {"a:1": 0})


def test_the_stable_server_stays_behind_a_canary_at_100_percent_as_the_fallback() -> None:
    """At 100 % the stable server takes only the retries of requests the canary failed; while
    the weights are split it is in the rotation anyway; a rollback (no fallback) leaves the
    canary out entirely."""

    def balancer(weights: dict[str, int], fallback: str | None) -> tuple[list, dict]:
        proxy = splitter_proxy(weights, fallback)
        return proxy["upstreams"], proxy["load_balancing"]

    upstreams, balancing = balancer({"stable:1": 0, "canary:2": 100}, "stable:1")
    assert upstreams == [{"dial": "canary:2"}, {"dial": "stable:1"}]
    assert balancing["selection_policy"] == {"policy": "first"}
    upstreams, balancing = balancer({"stable:1": 75, "canary:2": 25}, "stable:1")
    assert balancing["selection_policy"]["weights"] == [75, 25]
    upstreams, _ = balancer({"stable:1": 100, "canary:2": 0}, None)
    assert upstreams == [{"dial": "stable:1"}]
    # Retries never wait: a wait is cut short by the next config load (see splitter_config).
    assert "try_interval" not in balancing and "try_duration" not in balancing


@pytest.mark.parametrize(
    ("steps", "words"), [([5, 50], "ending at 100"), ([50, 25, 100], "increasing"), ([0, 100], "")]
)
def test_bad_steps_are_refused_naming_the_key(settings, steps, words) -> None:
    raw = settings.model_dump(mode="json")
    raw["canary"] = raw["canary"] | {"steps": steps}
    with pytest.raises(ParamsError, match=r"canary\.steps") as error:
        parse_settings(raw)
    assert words in str(error.value)
