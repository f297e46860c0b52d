"""What a canary step is judged on, read from the servers' own ``/metrics``.

Each server exports Prometheus counters and histograms since it started; a step is judged on
the difference between two scrapes (a snapshot at the step's start and one now):

- error rate: the share of 5xx among the canary's prediction requests
  (``bentoml_service_request_total`` by ``http_response_code``);
- latency: the canary's p95 against the stable server's, interpolated inside the buckets of
  ``bentoml_service_request_duration_seconds`` as Prometheus' ``histogram_quantile`` does;
- prediction shift: the population stability index (PSI) between the two servers'
  ``model_prediction_score`` histograms (the service exports it for every scored record),
  less the PSI that sampling noise gives samples of their sizes, with a chi-square test
  telling a real shift from the noise of a small sample. Both are monitoring/stats.py's, on
  the histograms' bin counts.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package }}.monitoring import stats

REQUESTS = "bentoml_service_request"
DURATION = "bentoml_service_request_duration_seconds"
SCORES = "model_prediction_score"
# Only the prediction routes count; probes and /metrics itself are not traffic.
ENDPOINTS = frozenset({"/predict", "/predict_batch"})


@dataclass(frozen=True)
class Snapshot:
    """Cumulative counts of one server at one moment."""

    codes: Counter = field(default_factory=Counter)  # HTTP status -> requests
    latency: Counter = field(default_factory=Counter)  # bucket upper bound -> cumulative count
    scores: Counter = field(default_factory=Counter)  # bucket upper bound -> cumulative count

    def __sub__(self, earlier: Snapshot) -> Snapshot:
        return Snapshot(
            self.codes - earlier.codes,
            _minus(self.latency, earlier.latency),
            _minus(self.scores, earlier.scores),
        )

    def __add__(self, other: Snapshot) -> Snapshot:
        return Snapshot(
            self.codes + other.codes, self.latency + other.latency, self.scores + other.scores
        )

    @property
    def requests(self) -> int:
        return int(sum(self.codes.values()))

    @property
    def errors(self) -> int:
        return int(sum(count for code, count in self.codes.items() if code >= 500))

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95(self) -> float | None:
        return quantile(0.95, self.latency)


def _minus(now: Counter, before: Counter) -> Counter:
    return Counter({bound: now[bound] - before.get(bound, 0) for bound in now})


def parse(text: str) -> Snapshot:
    """A Snapshot from Prometheus text (all label sets of a metric summed)."""
    codes: Counter = Counter()
    latency: Counter = Counter()
    scores: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{REQUESTS}_total" and labels.get("endpoint") in ENDPOINTS:
                codes[int(labels["http_response_code"])] += sample.value
            elif sample.name == f"{DURATION}_bucket" and labels.get("endpoint") in ENDPOINTS:
                latency[float(labels["le"])] += sample.value
            elif sample.name == f"{SCORES}_bucket":
                scores[float(labels["le"])] += sample.value
    return Snapshot(codes, latency, scores)


def scrape(url: str, timeout_s: float = 5.0) -> Snapshot:
    """The server's ``/metrics`` now; raises httpx.HTTPError when it does not answer."""
    response = httpx.get(f"{url}/metrics", timeout=timeout_s)
    response.raise_for_status()
    return parse(response.text)


def quantile(q: float, cumulative: Counter) -> float | None:
    """``histogram_quantile``: linear inside the bucket that holds the q-th observation."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def bin_counts(cumulative: Counter) -> list[float]:
    """Per-bin counts from cumulative bucket counts."""
    counts, below = [], 0.0
    for bound in sorted(cumulative):
        counts.append(max(cumulative[bound] - below, 0.0))
        below = cumulative[bound]
    return counts


def _pooled(expected: Counter, actual: Counter) -> tuple[list[float], list[float]] | None:
    """Both histograms' bin counts, sparse buckets pooled; None unless both have scores over
    the same buckets."""
    reference, observed = bin_counts(expected), bin_counts(actual)
    if not sum(reference) or not sum(observed) or len(reference) != len(observed):
        return None
    return stats.pooled_bins(reference, observed)


def psi(expected: Counter, actual: Counter) -> float | None:
    """PSI of ``actual`` against ``expected`` (same buckets), less the PSI that sampling noise
    alone gives two samples of these sizes (``monitoring.stats.psi``).

    Sparse buckets are pooled first (``stats.pooled_bins``): a step's few dozen scores over 20
    buckets would leave most of them nearly empty. The noise is 0.13 for a step's 150 canary and
    446 stable scores over 20 bins, two thirds of the usual 0.2 alarm; less that,
    ``max_score_psi`` means the same at a small step as at a large one.
    """
    pooled = _pooled(expected, actual)
    return None if pooled is None else stats.psi(*pooled)


def shift_p_value(expected: Counter, actual: Counter) -> float | None:
    """Chi-square test that both histograms come from one distribution (the p-value).

    ``psi`` removes the noise PSI of small samples on average, but a small sample's PSI still
    scatters widely around that average. A shift counts only when it is also unlikely to be
    sampling noise.
    """
    pooled = _pooled(expected, actual)
    if pooled is None or len(pooled[0]) < 2:
        return None
    return stats.chi2_homogeneity(*pooled)


def count_at_most(cumulative: Counter, value: float) -> float:
    """Observations at or below ``value``, interpolated inside its bucket."""
    lower, below = 0.0, 0.0
    for bound in sorted(cumulative):
        count = cumulative[bound]
        if value <= bound:
            if math.isinf(bound):
                return below
            return below + (count - below) * (value - lower) / (bound - lower)
        lower, below = bound, count
    return below


def tail_p_value(cumulative: Counter, threshold: float, q: float = 0.95) -> float | None:
    """Binomial test that more than ``1 - q`` of the observations lie above ``threshold``.

    A canary whose p95 really exceeds the threshold has more than 5 % of its requests above
    it; with 20 requests one slow request already moves an interpolated p95 a bucket, so the
    latency breach counts only when this p-value is small too.
    """
    from scipy.stats import binom

    total = max(cumulative.values(), default=0.0)
    if total <= 0:
        return None
    above = round(total - count_at_most(cumulative, threshold))
    return float(binom.sf(above - 1, round(total), 1 - q))
