"""Prometheus metrics of the stager. Labels name journeys, stages and partitions, never contacts.

Every outcome of `polku_stager_events_total` exists at 0 from the start: the dead-letter alert
(deploy/prometheus/alerts.yml) watches it with `increase()`, which sees nothing in a series
whose first sample is already 1.
"""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "polku_stager_events_total", "Touchpoints consumed, by outcome", ["outcome"]
)  # outcome: applied | duplicate | dead_letter | forwarded (sent with an id merged into
#   another) | suppressed (an erased person's)
for _outcome in ("applied", "duplicate", "dead_letter", "forwarded", "suppressed"):
    EVENTS.labels(_outcome)
IDENTITY_LINKS = Counter(
    "polku_stager_identity_links_total", "Touchpoints linking two ids, by what became of the link",
    ["outcome"],
)  # merged | already_merged | placeholder | already_linked | both_identified | too_many_ids
TRANSITIONS = Counter(
    "polku_stager_transitions_total", "Stage transitions", ["journey", "from_stage", "to_stage"]
)
CONTACTS_IN_STAGE = Gauge(
    "polku_stager_contacts_in_stage", "Contacts currently in each stage (partitions this "
    "instance owns; sum across instances)", ["journey", "stage"]
)
TIME_IN_STAGE = Histogram(
    "polku_stager_time_in_stage_seconds", "Time a contact spent in a stage before leaving it",
    ["journey", "stage"],
    buckets=(60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
             90 * 86400, 365 * 86400),
)
DEAD_LETTERS = Counter(
    "polku_stager_dead_letters_total", "Touchpoints sent to the dead-letter topic", ["reason"]
)
BATCH_SECONDS = Histogram(
    "polku_stager_batch_seconds", "Time to apply one partition batch, commit included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "polku_stager_batch_records", "Records per partition batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
TIMERS_FIRED = Counter("polku_stager_timers_fired_total", "Timer ticks evaluated", ["journey"])
CONSUMER_LAG_RECORDS = Gauge(
    "polku_stager_consumer_lag_records", "Records behind the end of each owned partition of the "
    "touchpoints topic", ["partition"]
)
CONSUMER_LAG_SECONDS = Gauge(
    "polku_stager_consumer_lag_seconds", "How stale the stages of each owned partition are: now "
    "minus the latest event time applied from it, 0 when caught up (shared/lag.py)",
    ["partition"]
)
# Up to ten minutes: the default buckets stop at 10 s, where a stager falling behind starts.
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
EVENT_TO_TRANSITION = Histogram(
    "polku_stager_event_to_transition_seconds", "Time from a transition's event time to its "
    "being recorded (for a timer's move: from the moment it was due)",
    buckets=FRESHNESS_BUCKETS,
)
OUTBOX_PUBLISHED = Counter(
    "polku_stager_outbox_published_total", "Outbox records published to Kafka", ["topic_kind"]
)
