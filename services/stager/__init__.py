"""The stager: applies touchpoints to every contact's journey state, fires timers, and publishes
the transitions through an outbox, exactly once per touchpoint.

- `worker.py` assembles it from the parts a run mode hands it; `app.py` is the distributed mode
  (Kafka + PostgreSQL), `services/dev/app.py` the embedded one.
- `consumer.py` is the loop (one consumer group member), `processing.py` runs the journeys over
  a batch, `store.py` keeps state, offsets, dedupe and the outbox in one transaction,
  `publisher.py` drains the outbox; `settings.py` and `metrics.py` beside them.
"""
