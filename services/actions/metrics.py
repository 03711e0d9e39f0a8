"""Prometheus metrics of the actions worker. Labels name endpoints by id (`ep_...`, see
GET /v1/endpoints for the URL), never a contact or a URL that might carry a token.

The counters the alert rules watch with `increase()` (deploy/prometheus/alerts.yml) exist at 0
from the start, for every outcome and every endpoint of the journeys (count_from_zero):
Prometheus sees no increase in a series whose first sample is already 1, so an endpoint's first
410 or first dead letter would otherwise never raise an alert.
"""

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

# Up to ten minutes: the default buckets stop at 10 s, and a retried delivery takes longer.
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

TRANSITIONS = Counter(
    "polku_actions_transitions_total", "Transition records consumed, by outcome", ["outcome"]
)  # outcome: matched | unmatched | dead_letter (any record of the topic that could not be read)
MERGES = Counter(
    "polku_actions_merges_total", "contact.merged records consumed, by outcome", ["outcome"]
)  # outcome: matched | unmatched
DELIVERIES_CREATED = Counter(
    "polku_actions_deliveries_created_total", "Deliveries created (one per transition and "
    "matching endpoint; a redelivered transition creates none)", ["endpoint"]
)
ATTEMPTS = Counter(
    "polku_actions_attempts_total", "Delivery attempts, by endpoint and outcome", ["endpoint",
                                                                                  "outcome"]
)  # outcome: delivered | retry | dead_letter | refused | gone
ATTEMPT_SECONDS = Histogram(
    "polku_actions_attempt_seconds", "Duration of one delivery attempt (HTTP POST)", ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
DEAD_LETTERS = Counter(
    "polku_actions_dead_letters_total", "Deliveries that became dead letters", ["endpoint"]
)
RETRIES_PENDING = Gauge(
    "polku_actions_retries_pending", "Deliveries waiting for a retry (failed at least once)",
    ["endpoint"],
)
DEAD_LETTERS_STORED = Gauge(
    "polku_actions_dead_letters_stored", "Dead-lettered deliveries currently stored",
    ["endpoint"],
)
BREAKER_STATE = Gauge(
    "polku_actions_breaker_state", "Circuit breaker of each endpoint in this worker: "
    "0 closed, 1 half-open, 2 open", ["endpoint"],
)
IN_FLIGHT = Gauge("polku_actions_in_flight", "Delivery attempts running in this worker")
ENDPOINTS_DISABLED = Counter(
    "polku_actions_endpoints_disabled_total", "Endpoints disabled after answering 410 Gone",
    ["endpoint"],
)
CONSUMER_LAG_RECORDS = Gauge(
    "polku_actions_consumer_lag_records", "Records behind the end of each owned partition of the "
    "transitions topic", ["partition"]
)
CONSUMER_LAG_SECONDS = Gauge(
    "polku_actions_consumer_lag_seconds", "How late the webhooks of each owned partition are: now "
    "minus the latest time of a transition read from it, 0 when caught up (shared/lag.py)",
    ["partition"]
)
TRANSITION_TO_DELIVERY = Histogram(
    "polku_actions_transition_to_delivery_seconds", "Time from reading a transition (its "
    "delivery created) to the webhook being delivered, retries included",
    buckets=FRESHNESS_BUCKETS,
)


for _outcome in ("matched", "unmatched", "dead_letter"):
    TRANSITIONS.labels(_outcome)
for _outcome in ("matched", "unmatched"):
    MERGES.labels(_outcome)


def count_from_zero(endpoints: Iterable[str]) -> None:
    """Expose each endpoint's dead letters and disablings as 0 before the first happens."""
    for endpoint in endpoints:
        DEAD_LETTERS.labels(endpoint)
        ENDPOINTS_DISABLED.labels(endpoint)


class EndpointMetrics:
    """One endpoint's children of the metrics every attempt updates, looked up once: a
    labels() call costs more than the update after it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.breaker_state = BREAKER_STATE.labels(endpoint)
        self.attempt_seconds = ATTEMPT_SECONDS.labels(endpoint)
        self._attempts: dict[str, Counter] = {}

    def attempts(self, outcome: str) -> Counter:
        child = self._attempts.get(outcome)
        if child is None:
            child = self._attempts[outcome] = ATTEMPTS.labels(self.endpoint, outcome)
        return child
